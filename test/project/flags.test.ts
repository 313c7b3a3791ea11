import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError } from "../../lib/core/errors.js";
import { applyUnflags, emptyFlags, flagsToArgs, parseBuildFlags, shellSplit } from "../../lib/project/index.js";

const projectDir = "/proj";
const parse = (items: string[], vars?: Record<string, string>) => parseBuildFlags(items, { projectDir, ...(vars ? { vars } : {}) });

describe("build_flags routing (platformio-ini.md §10)", () => {
  it("routes the worked example", () => {
    const f = parse([
      "-DVERSION=12 -DRATIO=1.5 -DVER_STR=1.2.3 '-DNAME=\"kiln\"'",
      "-Iinclude -Llib -lm -Wl,-Map,out.map -Wa,-mfoo",
      "-std=gnu++17 -include cfg.h -O2 -UDEBUG",
    ]);
    assert.deepEqual(f.defines, ["VERSION=12", "RATIO=1.5", "VER_STR=1.2.3", 'NAME="kiln"']);
    assert.deepEqual(f.includeDirs, ["/proj/include"]);
    assert.deepEqual(f.libDirs, ["/proj/lib"]);
    assert.deepEqual(f.libs, ["m"]);
    assert.deepEqual(f.linkFlags, ["-Wl,-Map,out.map"]);
    assert.deepEqual(f.asFlags, ["-mfoo"]);
    assert.deepEqual(f.cxxFlags, ["-std=gnu++17"]);
    assert.deepEqual(f.cFlags, []);
    assert.deepEqual(f.ccFlags, ["-Wa,-mfoo", "-include", "cfg.h", "-O2"]);
    assert.deepEqual(f.undefines, ["-UDEBUG"]);
  });

  it("takes the next word for -D, -I, -L, -l and paired flags", () => {
    const f = parse(["-D NAME -I /abs/inc -L rel -l foo -isystem sys -arch arm64 --param max=1 -framework Cocoa"]);
    assert.deepEqual(f.defines, ["NAME"]);
    assert.deepEqual(f.includeDirs, ["/abs/inc"]);
    assert.deepEqual(f.libDirs, ["/proj/rel"]);
    assert.deepEqual(f.libs, ["foo"]);
    assert.deepEqual(f.ccFlags, ["-isystem", "sys", "-arch", "arm64", "--param", "max=1"]);
    assert.deepEqual(f.linkFlags, ["-arch", "arm64", "-framework", "Cocoa"]);
  });

  it("routes compile+link, link-only, C-only, C++-only and library files", () => {
    const f = parse(["-pthread -fsanitize=address -mwindows -std=c11 -stdlib=libc++ -Wp,-MD libfoo.a -Wl,-rpath=/x +fast"]);
    assert.deepEqual(f.ccFlags, ["-pthread", "-fsanitize=address", "-Wp,-MD", "+fast"]);
    assert.deepEqual(f.linkFlags, ["-pthread", "-fsanitize=address", "-mwindows", "-Wl,-rpath=/x", "+fast"]);
    assert.deepEqual(f.cFlags, ["-std=c11"]);
    assert.deepEqual(f.cxxFlags, ["-stdlib=libc++"]);
    assert.deepEqual(f.libs, ["/proj/libfoo.a"]);
  });

  it("-UNAME removes an exact bare NAME define only", () => {
    const f = parse(["-DDEBUG -DLEVEL=2 -DLEVEL", "-UDEBUG -ULEVEL"]);
    assert.deepEqual(f.defines, ["LEVEL=2"]);
    assert.deepEqual(f.undefines, ["-UDEBUG", "-ULEVEL"]);
  });

  it("expands build variables when given", () => {
    const f = parse(["-I$PROJECT_DIR/inc -DENV=${PIOENV} -DKEEP=$OTHER"], { PROJECT_DIR: "/p", PIOENV: "uno" });
    assert.deepEqual(f.includeDirs, ["/p/inc"]);
    assert.deepEqual(f.defines, ["ENV=uno", "KEEP=$OTHER"]);
  });

  it("rejects dynamic !command flags with a hint", () => {
    assert.throws(() => parse(["-DA", "!python flags.py"]), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.code, "KILN_DYNAMIC_FLAGS");
      assert.equal(e.exitCode, 3);
      assert.match(e.hint!, /PLATFORMIO_BUILD_FLAGS/);
      return true;
    });
  });

  it("splits words like a POSIX shell", () => {
    assert.deepEqual(shellSplit(`a 'b c' "d \\"e\\" \\n" f\\ g ''`), ["a", "b c", 'd "e" \\n', "f g", ""]);
    assert.deepEqual(shellSplit(`-DX="a b"`), ["-DX=a b"]);
    assert.throws(() => shellSplit(`'open`), /unterminated ' quote/);
    assert.throws(
      () => parseBuildFlags(['-DX="open'], { projectDir, location: { file: "/p/platformio.ini", line: 4 } }),
      (e: unknown) => e instanceof ConfigError && e.code === "KILN_CONFIG_FLAGS" && e.message.startsWith("/p/platformio.ini:4: unterminated \" quote"),
    );
  });
});

describe("build_unflags (platformio-ini.md §11)", () => {
  it("removes a token from every scope", () => {
    const flags = parse(["-Os -pthread -DA -DB=1 -DB=2 -Iinc -lm"]);
    flags.linkFlags.push("-Os");
    const out = applyUnflags(flags, parse(["-Os -pthread"]));
    assert.deepEqual(out.ccFlags, []);
    assert.deepEqual(out.linkFlags, []);
    assert.deepEqual(out.defines, ["A", "B=1", "B=2"]);
  });

  it("a bare -DNAME removes NAME and NAME=…; -DNAME=1 only the exact one", () => {
    const flags = parse(["-DA -DA=3 -DB=1 -DB=2 -DC"]);
    assert.deepEqual(applyUnflags(flags, parse(["-DA", "-DB=1"])).defines, ["B=2", "C"]);
  });

  it("removes include dirs, libs, C++-only flags and pairs", () => {
    const flags = parse(["-Iinc -Iother -lm -lz -std=gnu++11 -include cfg.h -include keep.h -Wa,-mfoo"]);
    const out = applyUnflags(flags, parse(["-Iinc -lz -std=gnu++11 -include cfg.h -Wa,-mfoo"]));
    assert.deepEqual(out.includeDirs, ["/proj/other"]);
    assert.deepEqual(out.libs, ["m"]);
    assert.deepEqual(out.cxxFlags, []);
    assert.deepEqual(out.ccFlags, ["-include", "keep.h"]);
    assert.deepEqual(out.asFlags, []);
  });

  it("returns a new object and leaves the input alone", () => {
    const flags = parse(["-O2"]);
    const out = applyUnflags(flags, parse(["-O2"]));
    assert.deepEqual(flags.ccFlags, ["-O2"]);
    assert.deepEqual(out, emptyFlags());
  });
});

describe("flagsToArgs", () => {
  it("gives argv words per tool: defines, undefines, absolute -I, then flags", () => {
    const a = flagsToArgs(parse(["-DA=1 -UB -Iinc -O2 -std=gnu11 -std=gnu++17 -Wa,-mx -Wl,--gc-sections -Llib -lm /abs/libx.a"]));
    assert.deepEqual(a.c, ["-DA=1", "-UB", "-I/proj/inc", "-O2", "-Wa,-mx", "-std=gnu11"]);
    assert.deepEqual(a.cxx, ["-DA=1", "-UB", "-I/proj/inc", "-O2", "-Wa,-mx", "-std=gnu++17"]);
    assert.deepEqual(a.asm, ["-DA=1", "-UB", "-I/proj/inc", "-O2", "-Wa,-mx"]);
    assert.deepEqual(a.link, ["-Wl,--gc-sections", "-L/proj/lib"]);
    assert.deepEqual(a.libs, ["-lm", "/abs/libx.a"]);
  });

  it("passes assembler-only flags to the driver as -Wa,", () => {
    const f = emptyFlags();
    f.asFlags.push("--gstabs");
    assert.deepEqual(flagsToArgs(f).asm, ["-Wa,--gstabs"]);
  });
});
