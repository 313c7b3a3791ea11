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

type Commands = Array<CommandClass<KilnContext>>;
/** Loads a first word's commands; a group gets its second word too. */
type Loader = (secondWord?: string) => Promise<Commands>;

/**
 * A command group (`kiln pkg …`, `kiln peer …`): a known second word loads
 * its module alone (clipanion's state machine over all of a group's commands
 * cost ≈ 20 ms of `kiln pkg install`); anything else (help, a typo) loads
 * them all, for the usage and the suggestions.
 */
function group(subs: Record<string, () => Promise<Commands>>): Loader {
  return async (second) => {
    if (second !== undefined && Object.hasOwn(subs, second)) return subs[second]!();
    return (await Promise.all(Object.values(subs).map((load) => load()))).flat();
  };
}

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
    load: group({
      serve: async () => [(await import("./peer/serve.js")).PeerServeCommand],
      pair: async () => [(await import("./peer/pair.js")).PeerPairCommand],
      approve: async () => [(await import("./peer/approve.js")).PeerApproveCommand],
      deny: async () => [(await import("./peer/approve.js")).PeerDenyCommand],
      list: async () => [(await import("./peer/list.js")).PeerListCommand],
      remove: async () => [(await import("./peer/remove.js")).PeerRemoveCommand],
      revoke: async () => [(await import("./peer/remove.js")).PeerRevokeCommand],
      enable: async () => [(await import("./peer/remove.js")).PeerEnableCommand],
      disable: async () => [(await import("./peer/remove.js")).PeerDisableCommand],
      code: async () => [(await import("./peer/code.js")).PeerCodeCommand],
    }),
  },
  { word: "run", load: async () => [(await import("./run.js")).RunCommand] },
  { word: "upload", load: async () => [(await import("./upload.js")).UploadCommand] },
  {
    word: "pkg",
    load: group({
      gc: async () => [(await import("./pkg/gc.js")).PkgGcCommand],
      install: async () => [(await import("./pkg/install.js")).PkgInstallCommand],
      list: async () => [(await import("./pkg/list.js")).PkgListCommand],
      remove: async () => [(await import("./pkg/remove.js")).PkgRemoveCommand],
      update: async () => [(await import("./pkg/update.js")).PkgUpdateCommand],
      verify: async () => [(await import("./pkg/verify.js")).PkgVerifyCommand],
    }),
  },
];

/** The command classes for an argv: those of its first word (and a group's second), or all of them (help, unknown words). */
export async function loadCommands(firstWord: string | undefined, secondWord?: string): Promise<Commands> {
  const hits = commandTable.filter((e) => e.word === firstWord && firstWord !== "help");
  const lists = hits.length ? await Promise.all(hits.map((e) => e.load(secondWord))) : await Promise.all(commandTable.map((e) => e.load()));
  return [...new Set(lists.flat())];
}
