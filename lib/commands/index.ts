/**
 * Every command class, registered by lib/cli.ts. A command module imports
 * only clipanion and lib/commands/base.ts at load time; services are
 * imported inside execute().
 */
import type { CommandClass } from "clipanion";
import type { KilnContext } from "./base.js";
import { BoardsCommand } from "./boards.js";
import { BuildCommand } from "./build.js";
import { CleanCommand } from "./clean.js";
import { CompiledbCommand } from "./compiledb.js";
import { HelpCommand } from "./help.js";
import { InitCommand } from "./init.js";
import { ConfigCommand } from "./config.js";
import { RunCommand } from "./run.js";
import { PkgGcCommand } from "./pkg/gc.js";
import { PkgInstallCommand } from "./pkg/install.js";
import { PkgListCommand } from "./pkg/list.js";
import { PkgRemoveCommand } from "./pkg/remove.js";
import { PkgUpdateCommand } from "./pkg/update.js";
import { PkgVerifyCommand } from "./pkg/verify.js";
import { UploadCommand } from "./upload.js";

export const commands: Array<CommandClass<KilnContext>> = [
  BoardsCommand,
  BuildCommand,
  CleanCommand,
  CompiledbCommand,
  HelpCommand,
  InitCommand,
  ConfigCommand,
  RunCommand,
  PkgGcCommand,
  PkgInstallCommand,
  PkgListCommand,
  PkgRemoveCommand,
  PkgUpdateCommand,
  PkgVerifyCommand,
  UploadCommand,
];
