/** Debian's AVR toolchain and Arduino core as PlatformIO-style system packages, for tests. */
export const DEBIAN_AVR_CORE = "/usr/share/arduino/hardware/arduino/avr";

export const DEBIAN_AVR_PACKAGES = ["toolchain-atmelavr @ symlink:///usr", `framework-arduino-avr @ symlink://${DEBIAN_AVR_CORE}`, "tool-avrdude @ symlink:///usr"];

/** A `[env:…]` section building `board` with Debian's packages; `extra` lines are appended. */
export function debianAvrIni(board: string, extra = "", env = board): string {
  return `[env:${env}]
platform = atmelavr
board = ${board}
framework = arduino
platform_packages =
${DEBIAN_AVR_PACKAGES.map((p) => `  ${p}`).join("\n")}
${extra}`;
}
