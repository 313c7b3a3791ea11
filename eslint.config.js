// Lint: TypeScript rules plus the import boundaries of STYLE.md §1.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

/** A zone: files matching `files` may not import from the listed lib/ areas. */
function forbid(files, areas, message) {
  return {
    files,
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: areas.map((area) => ({
            group: [`**/${area}/*`, `../${area}/*`, `./${area}/*`],
            message: `${message} (STYLE.md §1)`,
          })),
        },
      ],
    },
  };
}

export default tseslint.config(
  { ignores: ["dist/", "build-test/", "node_modules/", "examples/", "**/*.js", "**/*.mjs", "**/*.cjs"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/no-non-null-assertion": "off",
      "no-console": "error",
    },
  },
  forbid(["lib/core/**"], ["toolchains", "platforms", "build", "flash", "remote", "commands", "project", "serial"], "core is leaf code"),
  forbid(["lib/toolchains/**"], ["platforms", "build", "flash", "remote", "commands"], "toolchains may import core only"),
  forbid(["lib/platforms/**"], ["build", "flash", "remote", "commands"], "platforms describe, build executes"),
  forbid(["lib/build/**"], ["flash", "remote", "commands", "serial"], "build never imports flash, remote or commands"),
  forbid(["lib/flash/**"], ["build", "remote", "commands"], "flash is always local and never imports build or remote"),
  forbid(["lib/serial/**"], ["build", "remote", "commands", "flash"], "serial is a service below flash"),
  forbid(["lib/remote/**"], ["flash", "commands"], "remote hands a manifest to flash, never imports it"),
  forbid(["lib/project/**"], ["toolchains", "platforms", "build", "flash", "remote", "commands", "serial"], "project may import core only"),
  {
    files: ["test/**", "scripts/**"],
    // Tests match terminal output, ANSI escapes included.
    rules: { "no-console": "off", "no-control-regex": "off" },
  },
);
