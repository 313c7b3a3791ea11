/**
 * The command table. Each entry names the first word(s) of its commands and
 * loads its module on demand, so `kiln build` imports the build command
 * only — not the monitor's or the uploader's dependencies. lib/cli.ts loads
 * every entry for `kiln help` and for an unknown word (to suggest commands).
 *
 * Adding a command: one entry here (first word → module), the class in
 * lib/commands/<verb>.ts.
 */
import type { CommandClass } from "clipanion";
import type { KilnContext } from "./base.js";

type Loader = () => Promise<Array<CommandClass<KilnContext>>>;

export const commandTable: Array<{ word: string; load: Loader }> = [
  { word: "boards", load: async () => [(await import("./boards.js")).BoardsCommand] },
  {
    word: "build",
    // The services a build needs start loading now, beside clipanion's own work, not after it.
    load: async () => [(await Promise.all([import("./build.js"), import("../build/open.js"), import("../build/index.js")]))[0].BuildCommand],
  },
  { word: "clean", load: async () => [(await import("./clean.js")).CleanCommand] },
  { word: "compiledb", load: async () => [(await import("./compiledb.js")).CompiledbCommand] },
  { word: "config", load: async () => [(await import("./config.js")).ConfigCommand] },
  { word: "devices", load: async () => [(await import("./devices.js")).DevicesCommand] },
  { word: "help", load: async () => [(await import("./help.js")).HelpCommand] },
  { word: "init", load: async () => [(await import("./init.js")).InitCommand] },
  { word: "monitor", load: async () => [(await import("./monitor.js")).MonitorCommand] },
  { word: "device", load: async () => [(await import("./monitor.js")).MonitorCommand] },
  {
    word: "peer",
    load: async () => {
      const [serve, pair, approve, list, remove, code] = await Promise.all([
        import("./peer/serve.js"),
        import("./peer/pair.js"),
        import("./peer/approve.js"),
        import("./peer/list.js"),
        import("./peer/remove.js"),
        import("./peer/code.js"),
      ]);
      return [
        serve.PeerServeCommand,
        pair.PeerPairCommand,
        approve.PeerApproveCommand,
        approve.PeerDenyCommand,
        list.PeerListCommand,
        remove.PeerRemoveCommand,
        remove.PeerRevokeCommand,
        remove.PeerEnableCommand,
        remove.PeerDisableCommand,
        code.PeerCodeCommand,
      ];
    },
  },
  { word: "run", load: async () => [(await import("./run.js")).RunCommand] },
  { word: "upload", load: async () => [(await import("./upload.js")).UploadCommand] },
  {
    word: "pkg",
    load: async () => {
      const [gc, install, list, remove, update, verify] = await Promise.all([
        import("./pkg/gc.js"),
        import("./pkg/install.js"),
        import("./pkg/list.js"),
        import("./pkg/remove.js"),
        import("./pkg/update.js"),
        import("./pkg/verify.js"),
      ]);
      return [gc.PkgGcCommand, install.PkgInstallCommand, list.PkgListCommand, remove.PkgRemoveCommand, update.PkgUpdateCommand, verify.PkgVerifyCommand];
    },
  },
];

/** The command classes for an argv: those of its first word, or all of them (help, unknown words). */
export async function loadCommands(firstWord: string | undefined): Promise<Array<CommandClass<KilnContext>>> {
  const hits = commandTable.filter((e) => e.word === firstWord && firstWord !== "help");
  const entries = hits.length ? hits : commandTable;
  const lists = await Promise.all(entries.map((e) => e.load()));
  return [...new Set(lists.flat())];
}
