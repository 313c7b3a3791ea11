import assert from "node:assert/strict";
import { mkdir, mkdtemp, realpath, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, sep } from "node:path";
import { describe, it, type TestContext } from "node:test";
import { KilnError } from "../../lib/core/errors.js";
import { ArtifactError, GuardError, LIMITS, checkArtifactManifest, checkFileManifest, containedPath, show, unsafePathReason, type FileEntry } from "../../lib/remote/guards.js";

const HASH = "a".repeat(64);
const file = (path: string, size = 1, mode = 0o644): FileEntry => ({ path, sha256: HASH, size, mode });

/** assert.throws matcher: a GuardError whose reason matches `re` (and path, when given). */
function guard(re: RegExp, path?: string) {
  return (e: unknown) => {
    assert.ok(e instanceof GuardError, `expected GuardError, got ${String(e)}`);
    assert.equal(e.code, "KILN_UNSAFE_INPUT");
    assert.equal(e.exitCode, 5);
    assert.match(String(e.data.reason), re);
    if (path !== undefined) assert.equal(e.data.path, path);
    return true;
  };
}

function artifact(re: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof ArtifactError, `expected ArtifactError, got ${String(e)}`);
    assert.ok(e instanceof KilnError);
    assert.equal(e.code, "KILN_ARTIFACT_INTEGRITY");
    assert.equal(e.exitCode, 5);
    assert.match(e.hint ?? "", /nothing was flashed.*--remote never/);
    assert.match(String(e.data.reason), re);
    return true;
  };
}

async function tempRoot(t: TestContext): Promise<string> {
  const dir = await realpath(await mkdtemp(join(tmpdir(), "kiln-guards-")));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe("unsafePathReason", () => {
  const hostile: Array<[string, RegExp]> = [
    ["", /empty/],
    ["/etc/passwd", /absolute/],
    ["/", /absolute/],
    ["..", /'\.\.'/],
    ["../x", /'\.\.'/],
    ["a/../../x", /'\.\.'/],
    ["a/..", /'\.\.'/],
    [".", /'\.'/],
    ["./a", /'\.'/],
    ["a/./b", /'\.'/],
    ["a//b", /empty component/],
    ["a/", /empty component/],
    ["a\\b", /backslash/],
    ["..\\x", /backslash/],
    ["C:x", /drive letter/],
    ["c:/windows", /drive letter/],
    ["Z:", /drive letter/],
    ["a\0b", /NUL/],
    ["a\nb", /control/],
    ["a\rb", /control/],
    ["\u001b[2Jx", /control/],
    ["tab\there", /control/],
    ["del\u007f", /control/],
    ["x\ud800y", /Unicode/],
    ["a".repeat(256), /over 255 bytes/],
    ["é".repeat(128), /over 255 bytes/],
    [`d/${"x".repeat(256)}/f`, /over 255 bytes/],
    [Array.from({ length: 33 }, () => "d").join("/"), /33 deep/],
  ];
  for (const [p, re] of hostile) {
    it(`refuses ${show(p)}`, () => {
      const reason = unsafePathReason(p);
      assert.ok(reason, `${show(p)} was accepted`);
      assert.match(reason, re);
    });
  }

  const good = [
    "main.cpp",
    "src/main.cpp",
    "a..b.c",
    "..a",
    "a..",
    ".hidden/x.h",
    "...",
    "Café/naïve ü.cpp",
    "日本語/ファイル.h",
    "emoji 😀.txt",
    "with space/and-dash_underscore.c",
    "a".repeat(255),
    "é".repeat(127) + "a",
    Array.from({ length: 32 }, () => "d").join("/"),
  ];
  for (const p of good) {
    it(`accepts ${show(p.length > 40 ? `${p.slice(0, 40)}…` : p)}`, () => {
      assert.equal(unsafePathReason(p), undefined);
    });
  }
});

describe("checkFileManifest", () => {
  it("returns fresh entries for a good manifest", () => {
    const input = [file("src/main.cpp", 10), file("platformio.ini", 0, 0o644), file("scripts/run.sh", 5, 0o755)];
    const got = checkFileManifest(JSON.parse(JSON.stringify(input)));
    assert.deepEqual(got, input);
    assert.notEqual(got[0], input[0]);
    assert.deepEqual(checkFileManifest([]), []);
  });

  it("refuses values that are not a list of entries", () => {
    for (const v of [null, undefined, {}, "a", 1, { length: 1, 0: file("a") }]) assert.throws(() => checkFileManifest(v), guard(/not an array/));
    for (const v of [null, "a", 1, [file("a")]]) assert.throws(() => checkFileManifest([v]), guard(/entry 0 is not an object/));
  });

  const bad: Array<[string, unknown, RegExp]> = [
    ["path missing", { sha256: HASH, size: 1, mode: 0o644 }, /path is not a string/],
    ["path a number", { path: 1, sha256: HASH, size: 1, mode: 0o644 }, /path is not a string/],
    ["an extra field", { ...file("a"), extra: 1 }, /expected exactly/],
    ["a missing field", { path: "a", sha256: HASH, size: 1 }, /expected exactly/],
    ["an unsafe path", file("../etc/passwd"), /'\.\.'/],
    ["an absolute path", file("/etc/passwd"), /absolute/],
    ["an upper-case hash", { ...file("a"), sha256: "A".repeat(64) }, /sha256/],
    ["a short hash", { ...file("a"), sha256: "a".repeat(63) }, /sha256/],
    ["a non-hex hash", { ...file("a"), sha256: "g".repeat(64) }, /sha256/],
    ["a negative size", file("a", -1), /size/],
    ["a fractional size", file("a", 1.5), /size/],
    ["a string size", { ...file("a"), size: "1" }, /size/],
    ["a NaN size", file("a", Number.NaN), /size/],
    ["a size one over the cap", file("a", LIMITS.blobBytes + 1), /over the per-file limit/],
    ["mode 0777", file("a", 1, 0o777), /mode/],
    ["mode 04755 (setuid)", file("a", 1, 0o4755), /mode/],
    ["mode as a string", { ...file("a"), mode: "644" }, /mode/],
  ];
  for (const [name, entry, re] of bad) {
    it(`refuses an entry with ${name}`, () => assert.throws(() => checkFileManifest([file("ok.c"), entry]), guard(re)));
  }

  it("names the offending path", () => {
    assert.throws(() => checkFileManifest([file("a\u001b[31m")]), (e: unknown) => {
      assert.ok(e instanceof GuardError);
      assert.equal(e.data.path, "a\u001b[31m");
      assert.ok(!e.message.includes("\u001b"), "the message carries a raw escape");
      assert.match(e.message, /"a\\u001b\[31m"/);
      return true;
    });
  });

  it("accepts a blob at exactly the cap", () => {
    assert.equal(checkFileManifest([file("a", LIMITS.blobBytes)]).length, 1);
  });

  it("caps the number of entries at exactly the limit", () => {
    const entries = Array.from({ length: LIMITS.entries }, (_, i) => file(`f${i}`, 0));
    assert.equal(checkFileManifest(entries).length, LIMITS.entries);
    entries.push(file("one-more", 0));
    assert.throws(() => checkFileManifest(entries), guard(/20001 entries, over the limit of 20000/));
  });

  it("caps the project size at exactly the limit", () => {
    const n = LIMITS.projectBytes / LIMITS.blobBytes;
    const entries = Array.from({ length: n }, (_, i) => file(`blob${i}`, LIMITS.blobBytes));
    assert.equal(checkFileManifest(entries).length, n);
    assert.throws(() => checkFileManifest([...entries, file("last", 1)]), guard(/over the limit of 536870912 bytes/, "last"));
  });

  it("refuses duplicates, by case and by Unicode normalisation", () => {
    assert.throws(() => checkFileManifest([file("a/b.c"), file("a/b.c")]), guard(/listed twice/, "a/b.c"));
    assert.throws(() => checkFileManifest([file("src/Main.cpp"), file("src/main.cpp")]), guard(/collides with "src\/Main.cpp"/, "src/main.cpp"));
    assert.throws(() => checkFileManifest([file("SRC/x"), file("src/x")]), guard(/collides/));
    const nfc = "Caf\u00e9.h";
    const nfd = "Cafe\u0301.h";
    assert.notEqual(nfc, nfd);
    assert.throws(() => checkFileManifest([file(nfc), file(nfd)]), guard(/collides/, nfd));
    assert.throws(() => checkFileManifest([file(nfd), file("CAF\u00c9.H")]), guard(/collides/));
  });

  it("refuses a path that is both a file and a directory, whatever the order", () => {
    assert.throws(() => checkFileManifest([file("a"), file("a/b")]), guard(/"a" to be a directory/, "a/b"));
    assert.throws(() => checkFileManifest([file("x/y/z"), file("x/y")]), guard(/"x\/y" to be a directory/, "x/y/z"));
    assert.throws(() => checkFileManifest([file("Lib"), file("lib/x.h")]), guard(/to be a directory/));
    assert.equal(checkFileManifest([file("a/b"), file("a/c"), file("ab"), file("a.b/c")]).length, 4);
  });
});

describe("containedPath", () => {
  it("joins a safe relative path under the root", async (t) => {
    const root = await tempRoot(t);
    assert.equal(containedPath(root, "src/main.cpp"), join(root, "src", "main.cpp"));
    assert.equal(containedPath(root, "a..b"), join(root, "a..b"));
    assert.equal(containedPath(`${root}${sep}`, "x"), join(root, "x"));
  });

  it("refuses every unsafe path before touching the disk", async (t) => {
    const root = await tempRoot(t);
    for (const rel of ["", "..", "../x", "a/../../x", "/etc/passwd", "a\\..\\..\\x", "C:x", "a\0b", "."]) {
      assert.throws(() => containedPath(root, rel), guard(/./, rel), rel);
    }
  });

  it("works from a relative root", () => {
    assert.equal(containedPath("some/dir", "f.c"), join(process.cwd(), "some", "dir", "f.c"));
  });

  it("is lexical: a symlink already in the root is not followed (writers must lstat / O_NOFOLLOW)", async (t) => {
    const root = await tempRoot(t);
    const outside = await tempRoot(t);
    await mkdir(join(root, "src"));
    await symlink(outside, join(root, "src", "escape"));
    // containedPath promises only that the *name* stays under root; it returns
    // the lexical path and does not resolve the link, so the writer's
    // O_NOFOLLOW/lstat checks are what stop a write through it.
    const got = containedPath(root, "src/escape/evil.c");
    assert.equal(got, join(root, "src", "escape", "evil.c"));
    assert.ok(got.startsWith(root + sep));
    assert.ok(!got.startsWith(outside));
  });
});

describe("checkArtifactManifest", () => {
  const image = (path: string, extra: Record<string, unknown> = {}) => ({ path, sha256: HASH, sizeBytes: 100, format: "bin", role: "app", ...extra });
  const manifest = (extra: Record<string, unknown> = {}) => ({
    schema: 1,
    env: "uno",
    platform: "atmelavr",
    board: { id: "uno", name: "Arduino Uno", mcu: "atmega328p", fCpu: 16000000, usbIds: ["2341:0043"] },
    images: [
      { path: "firmware.hex", sha256: HASH, sizeBytes: 2000, format: "hex", role: "flash" },
      { path: "firmware.eep", sha256: HASH, sizeBytes: 0, format: "eep", role: "eeprom" },
      { path: "firmware.elf", sha256: HASH, sizeBytes: 9000, format: "elf", role: "program" },
    ],
    upload: { protocol: "arduino", speed: 115200 },
    tools: { avrdude: "/opt/avrdude" },
    size: { flashBytes: 924, ramBytes: 9, flashMaxBytes: 32256, ramMaxBytes: 2048 },
    toolchain: "avr-gcc 7.3.0",
    builtAt: "2024-01-01T00:00:00.000Z",
    ...extra,
  });

  it("returns a typed copy of a good manifest (round trip of what a build writes)", () => {
    const input = manifest();
    const got = checkArtifactManifest(JSON.parse(JSON.stringify(input)));
    assert.deepEqual(got, input);
    assert.notEqual(got.images, input.images);
  });

  it("drops unknown fields and keeps '__proto__' keys as plain data", () => {
    const got = checkArtifactManifest(JSON.parse('{"schema":1,"env":"e","platform":"p","images":[{"path":"f.bin","sha256":"' + HASH + '","sizeBytes":1,"format":"bin","role":"app","junk":1}],"upload":{"__proto__":{"polluted":true}},"tools":{},"toolchain":"t","builtAt":"now","extra":1}'));
    assert.equal("extra" in got, false);
    assert.equal("junk" in got.images[0]!, false);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal((got.upload as Record<string, unknown>).polluted, undefined);
    assert.equal(Object.getPrototypeOf(got.upload), Object.prototype);
  });

  const missing: Array<[string, unknown, RegExp]> = [
    ["not an object", null, /not an object/],
    ["an array", [], /not an object/],
    ["schema 2", manifest({ schema: 2 }), /schema 2/],
    ["schema missing", manifest({ schema: undefined }), /schema/],
    ["env missing", manifest({ env: undefined }), /'env'/],
    ["platform a number", manifest({ platform: 3 }), /'platform'/],
    ["toolchain missing", manifest({ toolchain: undefined }), /'toolchain'/],
    ["builtAt missing", manifest({ builtAt: undefined }), /'builtAt'/],
    ["images missing", manifest({ images: undefined }), /'images'/],
    ["images empty", manifest({ images: [] }), /empty/],
    ["images an object", manifest({ images: {} }), /'images'/],
    ["upload missing", manifest({ upload: undefined }), /'upload'/],
    ["upload an array", manifest({ upload: [] }), /'upload'/],
    ["tools missing", manifest({ tools: undefined }), /'tools'/],
    ["tools a string", manifest({ tools: "/bin/sh" }), /'tools'/],
    ["a tool path not a string", manifest({ tools: { avrdude: ["/bin/sh"] } }), /'tools' entry "avrdude"/],
    ["board a string", manifest({ board: "uno" }), /'board'/],
    ["board null", manifest({ board: null }), /'board'/],
    ["board without mcu", manifest({ board: { id: "uno", name: "Uno", fCpu: 1, usbIds: [] } }), /'board'/],
    ["size negative", manifest({ size: { flashBytes: -1, ramBytes: 0 } }), /size\.flashBytes/],
    ["image not an object", manifest({ images: ["firmware.hex"] }), /image 0 is not an object/],
    ["image path missing", manifest({ images: [{ sha256: HASH, sizeBytes: 1, format: "bin", role: "app" }] }), /path is not a string/],
    ["image sha256 missing", manifest({ images: [image("a.bin", { sha256: undefined })] }), /sha256/],
    ["image sizeBytes missing", manifest({ images: [image("a.bin", { sizeBytes: undefined })] }), /sizeBytes/],
    ["image format missing", manifest({ images: [image("a.bin", { format: undefined })] }), /format/],
    ["image role missing", manifest({ images: [image("a.bin", { role: undefined })] }), /role/],
  ];
  for (const [name, value, re] of missing) {
    it(`refuses a manifest with ${name}`, () => assert.throws(() => checkArtifactManifest(value), artifact(re)));
  }

  const badImages: Array<[string, Record<string, unknown>, RegExp]> = [
    ["hash not hex", image("a.bin", { sha256: "z".repeat(64) }), /sha256/],
    ["hash upper case", image("a.bin", { sha256: "A".repeat(64) }), /sha256/],
    ["hash too long", image("a.bin", { sha256: "a".repeat(65) }), /sha256/],
    ["size over the cap", image("a.bin", { sizeBytes: LIMITS.imageBytes + 1 }), /over the per-image limit/],
    ["negative size", image("a.bin", { sizeBytes: -1 }), /sizeBytes/],
    ["fractional size", image("a.bin", { sizeBytes: 1.5 }), /sizeBytes/],
    ["unknown format", image("a.bin", { format: "exe" }), /format "exe"/],
    ["unknown role", image("a.bin", { role: "shell" }), /role "shell"/],
    ["name '../x'", image("../x"), /flat name/],
    ["name 'a/b'", image("a/b"), /flat name/],
    ["name '.'", image("."), /starts with '\.'/],
    ["name '..'", image(".."), /starts with '\.'/],
    ["name '.hidden'", image(".hidden"), /starts with '\.'/],
    ["name with a backslash", image("a\\b"), /flat name/],
    ["name with a space", image("a b.bin"), /flat name/],
    ["name with unicode", image("fïrmware.bin"), /flat name/],
    ["empty name", image(""), /flat name/],
    ["name of 65 characters", image("a".repeat(65)), /flat name/],
    ["the manifest's own name", image("Manifest.JSON"), /manifest\.json/],
    ["negative offset", image("a.bin", { offset: -1 }), /offset -1/],
    ["fractional offset", image("a.bin", { offset: 4096.5 }), /offset 4096.5/],
    ["offset as a decimal string", image("a.bin", { offset: "4096" }), /offset "4096"/],
    ["offset as a bad hex string", image("a.bin", { offset: "0xZZ" }), /offset/],
    ["offset null", image("a.bin", { offset: null }), /offset null/],
  ];
  for (const [name, img, re] of badImages) {
    it(`refuses an image with ${name}`, () => assert.throws(() => checkArtifactManifest(manifest({ images: [img] })), artifact(re)));
  }

  it("accepts an image of exactly the per-image cap and '0x…' offsets", () => {
    const got = checkArtifactManifest(manifest({ images: [image("app.bin", { sizeBytes: LIMITS.imageBytes, offset: "0x10000" }), image("boot.bin", { offset: "0x1000", sizeBytes: 0x7000, role: "bootloader" }), image("p.bin", { offset: 0x8000, sizeBytes: 0xc00, role: "partitions" })] }));
    assert.deepEqual(got.images.map((i) => i.offset), [0x10000, 0x1000, 0x8000]);
    assert.equal(got.images.map((i) => i.offset).every((o) => typeof o === "number"), true);
    assert.equal("offset" in checkArtifactManifest(manifest()).images[0]!, false);
  });

  it("caps the number of images at exactly the limit", () => {
    const images = Array.from({ length: LIMITS.images }, (_, i) => image(`i${i}.bin`, { sizeBytes: 1 }));
    assert.equal(checkArtifactManifest(manifest({ images })).images.length, LIMITS.images);
    assert.throws(() => checkArtifactManifest(manifest({ images: [...images, image("x.bin")] })), artifact(/65 images, over the limit of 64/));
  });

  it("caps the total image size at exactly the limit", () => {
    const half = LIMITS.imagesTotalBytes / 2;
    assert.equal(checkArtifactManifest(manifest({ images: [image("a.bin", { sizeBytes: half }), image("b.bin", { sizeBytes: half })] })).images.length, 2);
    assert.throws(() => checkArtifactManifest(manifest({ images: [image("a.bin", { sizeBytes: half }), image("b.bin", { sizeBytes: half }), image("c.bin", { sizeBytes: 1 })] })), artifact(/over the limit of 67108864 bytes/));
  });

  it("refuses duplicate image names, including by case", () => {
    assert.throws(() => checkArtifactManifest(manifest({ images: [image("a.bin"), image("a.bin")] })), artifact(/listed twice/));
    assert.throws(() => checkArtifactManifest(manifest({ images: [image("a.bin"), image("A.BIN")] })), artifact(/collides with "a.bin"/));
  });

  it("keeps offset images inside the flash when its size is given", () => {
    const flashBytes = 0x400000;
    const edge = image("app.bin", { offset: flashBytes - 100, sizeBytes: 100 });
    assert.equal(checkArtifactManifest(manifest({ images: [edge] }), { flashBytes }).images.length, 1);
    assert.throws(() => checkArtifactManifest(manifest({ images: [image("app.bin", { offset: flashBytes - 99, sizeBytes: 100 })] }), { flashBytes }), artifact(/ends past the board's 4194304-byte flash/));
    assert.throws(() => checkArtifactManifest(manifest({ images: [image("app.bin", { offset: "0x400000", sizeBytes: 1 })] }), { flashBytes }), artifact(/flash/));
    // Without flashBytes, or without an offset, there is nothing to compare.
    assert.equal(checkArtifactManifest(manifest({ images: [image("app.bin", { offset: flashBytes, sizeBytes: 100 })] })).images.length, 1);
    assert.equal(checkArtifactManifest(manifest(), { flashBytes: 10 }).images.length, 3);
  });

  it("refuses overlapping regions, whatever the order", () => {
    const a = image("a.bin", { offset: 0x1000, sizeBytes: 0x1000 });
    assert.throws(() => checkArtifactManifest(manifest({ images: [a, image("b.bin", { offset: 0x1fff, sizeBytes: 1 })] })), artifact(/overlaps "a.bin"/));
    assert.throws(() => checkArtifactManifest(manifest({ images: [image("b.bin", { offset: "0x1800", sizeBytes: 4 }), a] })), artifact(/overlaps/));
    assert.throws(() => checkArtifactManifest(manifest({ images: [a, image("same.bin", { offset: 0x1000, sizeBytes: 0x1000 })] })), artifact(/overlaps/));
    // A big region hides a later one behind a small one in between.
    const big = image("big.bin", { offset: 0, sizeBytes: 0x10000 });
    assert.throws(() => checkArtifactManifest(manifest({ images: [big, image("s.bin", { offset: 0x100, sizeBytes: 1 }), image("t.bin", { offset: 0x8000, sizeBytes: 1 })] })), artifact(/overlaps "big.bin"/));
    // Touching is fine, and empty images occupy nothing.
    assert.equal(checkArtifactManifest(manifest({ images: [a, image("b.bin", { offset: 0x2000, sizeBytes: 1 }), image("e.bin", { offset: 0x1800, sizeBytes: 0 })] })).images.length, 3);
  });
});
