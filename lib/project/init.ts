/**
 * `kiln init`: a new PlatformIO-style project for a board. Never overwrites:
 * if any file it would write exists, nothing is written.
 */
import { mkdir, open } from "node:fs/promises";
import { dirname, join } from "node:path";
import { errnoCode, ExitCode, KilnError } from "../core/errors.js";

/** What init needs to know of a board (a InitBoard fits). */
export interface InitBoard {
  id: string;
  platform: string;
  frameworks: string[];
}

export interface InitResult {
  dir: string;
  env: string;
  files: string[];
}

/** The files of a new project for `board`, by path relative to the project. */
export function projectFiles(board: InitBoard): Record<string, string> {
  const framework = board.frameworks.includes("arduino") ? "arduino" : board.frameworks[0];
  return {
    "platformio.ini": [
      "; kiln (and PlatformIO) project configuration",
      "; https://docs.platformio.org/page/projectconf.html",
      "",
      `[env:${board.id}]`,
      `platform = ${board.platform}`,
      `board = ${board.id}`,
      ...(framework ? [`framework = ${framework}`] : []),
      "monitor_speed = 9600",
      "",
    ].join("\n"),
    "src/main.cpp": [
      "#include <Arduino.h>",
      "",
      "void setup() {",
      "  Serial.begin(9600);",
      "  pinMode(LED_BUILTIN, OUTPUT);",
      "}",
      "",
      "void loop() {",
      "  digitalWrite(LED_BUILTIN, HIGH);",
      "  delay(500);",
      "  digitalWrite(LED_BUILTIN, LOW);",
      "  delay(500);",
      '  Serial.println("tick");',
      "}",
      "",
    ].join("\n"),
    ".gitignore": ".kiln/\n.pio/\n",
  };
}

/** Write a new project into `dir`. Throws KILN_INIT_EXISTS (exit 2) naming the files that already exist. */
export async function initProject(dir: string, board: InitBoard): Promise<InitResult> {
  const files = projectFiles(board);
  const existing: string[] = [];
  const handles = [];
  try {
    // Exclusive creation: a file appearing between check and write is still never overwritten.
    for (const rel of Object.keys(files)) {
      const path = join(dir, rel);
      await mkdir(dirname(path), { recursive: true });
      try {
        handles.push({ rel, handle: await open(path, "wx") });
      } catch (e) {
        if (errnoCode(e) === "EEXIST") existing.push(rel);
        else throw e;
      }
    }
    if (existing.length) {
      throw new KilnError("KILN_INIT_EXISTS", ExitCode.usage, `${dir} already has ${existing.join(", ")}; kiln init never overwrites files`, {
        hint: "run it in an empty directory, or remove those files first",
        data: { existing },
      });
    }
    for (const { rel, handle } of handles) await handle.writeFile(files[rel]!);
    return { dir, env: board.id, files: Object.keys(files) };
  } finally {
    for (const { handle } of handles) await handle.close();
    if (existing.length) {
      const { rm } = await import("node:fs/promises");
      for (const { rel } of handles) await rm(join(dir, rel), { force: true });
    }
  }
}
