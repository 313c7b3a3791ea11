import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { sketchFunctions, sketchOrder, sketchToCpp } from "../../lib/build/sketch.js";
import { requireTool, tempDir } from "../helpers/cli.js";

const one = (text: string, path = "/s/Sketch/Sketch.ino") => sketchToCpp([{ path, text }]);
const protos = (text: string) => sketchFunctions([{ path: "/s/Sketch/Sketch.ino", text }]).map((f) => f.prototype);

/** The line a marker ends up on in the output, and what #line says it is. */
function mappedLine(cpp: string, marker: string): { file: string; line: number } {
  const lines = cpp.split("\n");
  const at = lines.findIndex((l) => l.includes(marker));
  assert.ok(at >= 0, `marker ${marker} not found`);
  let file = "";
  let line = 0;
  let base = 0;
  for (let i = 0; i < at; i++) {
    const m = /^#line (\d+) "(.*)"$/.exec(lines[i]!);
    if (m) {
      file = m[2]!;
      line = Number(m[1]);
      base = i + 1;
    }
  }
  return { file, line: line + (at - base) };
}

describe("sketchOrder", () => {
  it("puts the sketch named like its folder first, then the rest alphabetically", () => {
    const order = sketchOrder([{ path: "/p/Blink/zeta.ino" }, { path: "/p/Blink/Blink.ino" }, { path: "/p/Blink/alpha.ino" }, { path: "/p/Blink/Beta.pde" }]).map((f) => f.path);
    assert.deepEqual(order, ["/p/Blink/Blink.ino", "/p/Blink/Beta.pde", "/p/Blink/alpha.ino", "/p/Blink/zeta.ino"]);
  });
  it("without a main sketch keeps alphabetical order", () => {
    assert.deepEqual(sketchOrder([{ path: "/p/src/b.ino" }, { path: "/p/src/a.ino" }]).map((f) => f.path), ["/p/src/a.ino", "/p/src/b.ino"]);
  });
});

describe("sketchToCpp", () => {
  it("adds Arduino.h and a #line for the file", () => {
    const cpp = one("void setup() {}\nvoid loop() {}\n");
    const lines = cpp.split("\n");
    assert.equal(lines[0], "#include <Arduino.h>");
    assert.equal(lines[1], '#line 1 "/s/Sketch/Sketch.ino"');
  });

  it("declares functions defined after use, before the first definition", () => {
    const cpp = one("int x = 0;\nvoid setup() { helper(3); }\nvoid loop() {}\nint helper(int v) { return v; }\n");
    assert.deepEqual(protos("int x = 0;\nvoid setup() { helper(3); }\nvoid loop() {}\nint helper(int v) { return v; }\n"), ["void setup();", "void loop();", "int helper(int v);"]);
    assert.ok(cpp.indexOf("int helper(int v);") < cpp.indexOf("void setup() {"));
    assert.ok(cpp.indexOf("int x = 0;") < cpp.indexOf("int helper(int v);"));
  });

  it("keeps every original line at its original number", () => {
    const src = "#include <SPI.h>\n// comment\nbyte a;\n\nvoid setup() {\n  MARK_SETUP;\n}\n\nvoid loop() {\n  MARK_LOOP;\n}\n";
    const cpp = one(src);
    assert.deepEqual(mappedLine(cpp, "MARK_SETUP"), { file: "/s/Sketch/Sketch.ino", line: 6 });
    assert.deepEqual(mappedLine(cpp, "MARK_LOOP"), { file: "/s/Sketch/Sketch.ino", line: 10 });
  });

  it("maps lines of every file of a multi-file sketch", () => {
    const cpp = sketchToCpp([
      { path: "/p/Multi/util.ino", text: "\n\nint twice(int v) {\n  return 2 * v; // MARK_UTIL\n}\n" },
      { path: "/p/Multi/Multi.ino", text: "void setup() {\n  twice(1); // MARK_MAIN\n}\nvoid loop() {}\n" },
    ]);
    assert.ok(cpp.indexOf("MARK_MAIN") < cpp.indexOf("MARK_UTIL"), "main sketch first");
    assert.deepEqual(mappedLine(cpp, "MARK_MAIN"), { file: "/p/Multi/Multi.ino", line: 2 });
    assert.deepEqual(mappedLine(cpp, "MARK_UTIL"), { file: "/p/Multi/util.ino", line: 4 });
    assert.ok(cpp.indexOf("int twice(int v);") < cpp.indexOf("void setup() {"));
  });

  it("each prototype carries a #line pointing at its definition", () => {
    const cpp = one("void setup() {}\n\n\nvoid later() {}\n");
    assert.match(cpp, /#line 4 "\/s\/Sketch\/Sketch.ino"\nvoid later\(\);/);
  });

  it("handles multi-line signatures and comments inside them", () => {
    assert.deepEqual(protos("unsigned long\nmeasure(int pin, /* the pin */\n        bool fast) // why\n{\n  return 0;\n}\n"), ["unsigned long measure(int pin, bool fast);"]);
  });

  it("keeps default arguments in the prototype and blanks them in the definition", () => {
    const src = 'void setup() { blinkN(); say(); }\nvoid loop() {}\nvoid blinkN(int n = 3, int ms = (100 + 5)) {}\nvoid say(const char *s = "a,b") {}\n';
    const cpp = one(src);
    assert.match(cpp, /void blinkN\(int n = 3, int ms = \(100 \+ 5\)\);/);
    assert.match(cpp, /void say\(const char \*s = "a,b"\);/);
    assert.match(cpp, /void blinkN\(int n\s+, int ms\s+\) \{\}/);
    assert.match(cpp, /void say\(const char \*s\s+\) \{\}/);
    assert.equal(cpp.split("\n").length, one("void setup() {}\nvoid loop() {}\nvoid blinkN() {}\nvoid say() {}\n").split("\n").length);
  });

  it("skips templates, methods, ISRs, namespaces, classes and extern C blocks", () => {
    const src = [
      "template <typename T> T twice(T v) { return v + v; }",
      "template <typename T>",
      "T thrice(T v) { return v * 3; }",
      "class Led { public: void on() { } int pin() const { return 1; } };",
      "void Led2::off() { }",
      "ISR(TIMER1_COMPA_vect) { }",
      "namespace util { int inner() { return 1; } }",
      'extern "C" { void cfunc(void) { } }',
      "struct P { int x; };",
      "enum Mode { A, B };",
      "int table[] = { 1, 2, 3 };",
      "void setup() { }",
    ].join("\n");
    assert.deepEqual(protos(src), ["void setup();"]);
  });

  it("does not declare a function twice when the sketch already declares it", () => {
    const src = "void pulse(int pin, int times);\nvoid setup() { pulse(1, 2); }\nvoid loop() {}\nvoid pulse(int pin, int times) {}\n";
    assert.deepEqual(protos(src), ["void setup();", "void loop();"]);
  });

  it("ignores braces and function-like text in strings, chars and comments", () => {
    const src = 'const char *s = "void fake() {";\nchar c = \'{\';\n/* void alsoFake() { */\n// void fake2() {\nvoid setup() { Serial.print("}"); }\nvoid loop() { helper(); }\nvoid helper() {}\n';
    assert.deepEqual(protos(src), ["void setup();", "void loop();", "void helper();"]);
  });

  it("ignores preprocessor lines, including continued ones, and #if 0 blocks", () => {
    const src = "#define BODY(x) { \\\n  x; }\n#if 0\nvoid dead() {}\n#endif\n#ifdef FOO\nvoid foo() {}\n#endif\nvoid setup() {}\n";
    assert.deepEqual(protos(src), ["void foo();", "void setup();"]);
  });

  it("uses types defined before the first function, and leaves out prototypes of types defined later", () => {
    const src = "struct Early { int a; };\ntypedef struct { int b; } Typed;\nEarly make() { return Early(); }\nTyped get() { Typed t; return t; }\nstruct Late { int c; };\nLate late() { return Late(); }\n";
    assert.deepEqual(protos(src), ["Early make();", "Typed get();"]);
  });

  it("handles pointer and reference returns, static and inline functions, const params", () => {
    const src = "static int counter() { return 0; }\ninline byte *buf(const String &s) { return 0; }\nconst char* name(void) { return \"\"; }\nvoid setup() {}\n";
    assert.deepEqual(protos(src), ["static int counter();", "inline byte *buf(const String &s);", "const char* name(void);"].concat(["void setup();"]));
  });

  it("keeps __attribute__ in return types", () => {
    assert.deepEqual(protos("void __attribute__((noinline)) slow(int n) {}\nvoid setup() { slow(1); }\n"), ["void __attribute__((noinline)) slow(int n);", "void setup();"]);
  });

  it("a sketch with no functions is returned with only the include added", () => {
    const cpp = one("int x;\n");
    assert.equal(cpp, '#include <Arduino.h>\n#line 1 "/s/Sketch/Sketch.ino"\nint x;\n');
  });

  it("accepts CRLF line endings", () => {
    assert.deepEqual(protos("void setup()\r\n{\r\n}\r\nvoid loop() {}\r\n"), ["void setup();", "void loop();"]);
  });

  // debian-avr.md §5: the 13 Debian examples that fail without prototypes, as patterns.
  const patterns: Record<string, string> = {
    "Midi: noteOn(cmd, pitch, velocity) called in loop, defined after": "void setup() {}\nvoid loop() { noteOn(0x90, 0x1E, 0x45); }\nvoid noteOn(int cmd, int pitch, int velocity) {}\n",
    "SerialCallResponse: establishContact()": "void setup() { establishContact(); }\nvoid loop() {}\nvoid establishContact() {}\n",
    "SerialCallResponseASCII: establishContact()": "int inByte = 0;\nvoid setup() { establishContact(); }\nvoid loop() {}\nvoid establishContact() { while (Serial.available() <= 0) { Serial.println(\"0,0,0\"); } }\n",
    "WhileStatementConditional: calibrate() inside while": "void setup() {}\nvoid loop() { while (digitalRead(2) == HIGH) { calibrate(); } }\nvoid calibrate() {}\n",
    "Ping: long microsecondsToInches(long)": "void setup() {}\nvoid loop() { long d = microsecondsToInches(10); }\nlong microsecondsToInches(long microseconds) { return microseconds / 74 / 2; }\n",
    "RowColumnScanning: readSensors(), refreshScreen()": "int pixels[8][8];\nvoid setup() {}\nvoid loop() { readSensors(); refreshScreen(); }\nvoid readSensors() {}\nvoid refreshScreen() {}\n",
    "ArduinoISP: avrisp() with a pre-declared pulse()": "void pulse(int pin, int times);\nvoid setup() { pulse(7, 2); }\nvoid loop(void) { avrisp(); }\nuint8_t getch() { return 0; }\nvoid pulse(int pin, int times) {}\nvoid avrisp() { uint8_t ch = getch(); }\n",
    "eeprom_crc: unsigned long eeprom_crc(void)": "void setup() { Serial.println(eeprom_crc(), HEX); }\nvoid loop() {}\nunsigned long eeprom_crc(void) { return 0; }\n",
    "eeprom_get: secondTest() using a struct defined earlier": "struct MyObject { float field1; byte field2; };\nvoid setup() { secondTest(); }\nvoid secondTest() { MyObject customVar; }\nvoid loop() {}\n",
    "BarometricPressureSensor: unsigned int readRegister(byte, int)": "const byte READ = 0b11111100;\nvoid setup() { writeRegister(0x02, 0x2D); }\nvoid loop() { unsigned int v = readRegister(0x1F, 1); }\nunsigned int readRegister(byte thisRegister, int bytesToRead) { return 0; }\nvoid writeRegister(byte thisRegister, byte thisValue) {}\n",
    "DigitalPotControl: digitalPotWrite(int, int)": "void setup() {}\nvoid loop() { digitalPotWrite(1, 2); }\nvoid digitalPotWrite(int address, int value) {}\n",
    "slave_receiver: Wire.onReceive(receiveEvent)": "void setup() { Wire.onReceive(receiveEvent); }\nvoid loop() {}\nvoid receiveEvent(int howMany) {}\n",
    "slave_sender: Wire.onRequest(requestEvent)": "void setup() { Wire.onRequest(requestEvent); }\nvoid loop() {}\nvoid requestEvent() {}\n",
  };
  for (const [name, src] of Object.entries(patterns)) {
    it(`pattern ${name}`, () => {
      const cpp = one(src);
      const defs = sketchFunctions([{ path: "/s/Sketch/Sketch.ino", text: src }]);
      const firstBody = cpp.indexOf("void setup()", cpp.indexOf(defs[defs.length - 1]!.prototype) + 1);
      for (const f of defs) assert.ok(cpp.indexOf(f.prototype) < firstBody || f.name === "pulse", `${f.prototype} declared before use`);
      assert.ok(defs.length >= 2);
    });
  }
});

describe("sketchToCpp compiles the Debian examples that need prototypes", () => {
  const exec = promisify(execFile);
  const core = "/usr/share/arduino/hardware/arduino/avr";
  const doc = "/usr/share/doc/arduino/examples";
  const sketches = [
    `${doc}/04.Communication/Midi`,
    `${doc}/04.Communication/SerialCallResponse`,
    `${doc}/04.Communication/SerialCallResponseASCII`,
    `${doc}/05.Control/WhileStatementConditional`,
    `${doc}/06.Sensors/Ping`,
    `${doc}/07.Display/RowColumnScanning`,
    `${doc}/11.ArduinoISP/ArduinoISP`,
    `${core}/libraries/EEPROM/examples/eeprom_crc`,
    `${core}/libraries/EEPROM/examples/eeprom_get`,
    `${core}/libraries/SPI/examples/BarometricPressureSensor`,
    `${core}/libraries/SPI/examples/DigitalPotControl`,
    `${core}/libraries/Wire/examples/slave_receiver`,
    `${core}/libraries/Wire/examples/slave_sender`,
  ];
  for (const dir of sketches) {
    it(dir.split("/").pop()!, async (t) => {
      requireTool("avr-g++", "gcc-avr");
      const names = (await readdir(dir)).filter((n) => n.endsWith(".ino"));
      const files = await Promise.all(names.map(async (n) => ({ path: join(dir, n), text: await readFile(join(dir, n), "utf8") })));
      const tmp = await tempDir();
      t.after(() => import("node:fs/promises").then((fs) => fs.rm(tmp, { recursive: true, force: true })));
      const out = join(tmp, "sketch.ino.cpp");
      await writeFile(out, sketchToCpp(files));
      const includes = ["cores/arduino", "variants/standard", "libraries/SPI/src", "libraries/Wire/src", "libraries/EEPROM/src"].map((d) => `-I${core}/${d}`);
      const args = ["-fsyntax-only", "-w", "-std=gnu++11", "-fpermissive", "-mmcu=atmega328p", "-DF_CPU=16000000L", "-DARDUINO=10819", "-DARDUINO_AVR_UNO", "-DARDUINO_ARCH_AVR", "-DDECIMAL_DIG=__DECIMAL_DIG__", `-I${dir}`, ...includes, out];
      await exec("avr-g++", args);
    });
  }

  it("a compile error points at the .ino file and line", async (t) => {
    requireTool("avr-g++", "gcc-avr");
    const tmp = await tempDir();
    t.after(() => import("node:fs/promises").then((fs) => fs.rm(tmp, { recursive: true, force: true })));
    const ino = join(tmp, "Broken", "Broken.ino");
    const src = "void setup() {\n  helper();\n}\n\nvoid loop() {\n  int x = undefined_thing;\n}\nvoid helper() {}\n";
    const out = join(tmp, "Broken.ino.cpp");
    await writeFile(out, sketchToCpp([{ path: ino, text: src }]));
    const r = await exec("avr-g++", ["-fsyntax-only", "-mmcu=atmega328p", `-I${core}/cores/arduino`, `-I${core}/variants/standard`, "-DDECIMAL_DIG=__DECIMAL_DIG__", out]).then(
      () => assert.fail("compiled"),
      (e: { stderr: string }) => e.stderr,
    );
    assert.match(r, new RegExp(`${ino.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}:6:\\d+: error: .undefined_thing. was not declared`));
  });
});
