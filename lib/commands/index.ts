/**
 * Every command class, registered by lib/cli.ts. A command module imports
 * only clipanion and lib/commands/base.ts at load time.
 */
import type { CommandClass } from "clipanion";
import type { KilnContext } from "./base.js";

export const commands: Array<CommandClass<KilnContext>> = [
];
