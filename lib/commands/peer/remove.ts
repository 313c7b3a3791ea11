import { Command, Option } from "clipanion";
import { KilnCommand } from "../base.js";

export class PeerRemoveCommand extends KilnCommand {
  static override paths = [["peer", "remove"]];
  static override usage = Command.Usage({
    category: "Build peers",
    description: "Forget a peer this machine builds on",
    details: "Builds stop using it at once. To use it again, pair again.",
    examples: [
      ["Forget the peer 'lab'", "$0 peer remove lab"],
      ["By pin prefix", "$0 peer remove 3f2a9c1b77d0"],
    ],
  });

  key = Option.String({ name: "label-or-pin" });

  async execute(): Promise<number> {
    const reporter = await this.reporter();
    const { updatePeer } = await import("../../remote/store.js");
    const row = await updatePeer(this.context.settings.configDir, this.key, (rows, r) => rows.filter((x) => x !== r));
    if (this.json) reporter.event({ type: "result", command: "peer remove", label: row.label, pin: row.pin });
    else this.context.stdout.write(`Removed peer '${row.label}'.\n`);
    return 0;
  }
}

export class PeerRevokeCommand extends KilnCommand {
  static override paths = [["peer", "revoke"]];
  static override usage = Command.Usage({
    category: "Build peers",
    description: "Revoke a client of this machine's peer server",
    details: "Its next request gets 403 and no work is done, also while `kiln peer serve` keeps running.",
    examples: [
      ["Revoke the client 'laptop'", "$0 peer revoke laptop"],
      ["By id or pin prefix", "$0 peer revoke 3f2a9c0e1b"],
    ],
  });

  key = Option.String({ name: "id-label-or-pin" });

  async execute(): Promise<number> {
    const reporter = await this.reporter();
    const { updateClient } = await import("../../remote/store.js");
    const row = await updateClient(this.context.settings.configDir, this.key, (rows, r) => rows.map((x) => (x === r ? { ...x, status: "revoked" as const } : x)));
    if (this.json) reporter.event({ type: "result", command: "peer revoke", id: row.id, label: row.label, pin: row.pin });
    else this.context.stdout.write(`Revoked client '${row.label}'.\n`);
    return 0;
  }
}

abstract class SwitchCommand extends KilnCommand {
  key = Option.String({ name: "label-or-pin" });
  abstract readonly enable: boolean;

  async execute(): Promise<number> {
    const reporter = await this.reporter();
    const { updatePeer } = await import("../../remote/store.js");
    const row = await updatePeer(this.context.settings.configDir, this.key, (rows, r) => rows.map((x) => (x === r ? { ...x, enabled: this.enable } : x)));
    if (this.json) reporter.event({ type: "result", command: `peer ${this.enable ? "enable" : "disable"}`, label: row.label, enabled: this.enable });
    else this.context.stdout.write(`Peer '${row.label}' ${this.enable ? "enabled" : "disabled: builds will not use it"}.\n`);
    return 0;
  }
}

export class PeerEnableCommand extends SwitchCommand {
  readonly enable = true;
  static override paths = [["peer", "enable"]];
  static override usage = Command.Usage({
    category: "Build peers",
    description: "Let builds use a paired peer again",
    details: "Undoes `kiln peer disable`; the pairing itself never changed.",
    examples: [
      ["Use 'lab' again", "$0 peer enable lab"],
      ["By pin prefix", "$0 peer enable 3f2a9c1b77d0"],
    ],
  });
}

export class PeerDisableCommand extends SwitchCommand {
  readonly enable = false;
  static override paths = [["peer", "disable"]];
  static override usage = Command.Usage({
    category: "Build peers",
    description: "Keep a paired peer but stop building on it",
    details: "The scheduler skips it (and says so when no other peer is free); `kiln peer enable` undoes it.",
    examples: [
      ["Pause 'lab'", "$0 peer disable lab"],
      ["By pin prefix", "$0 peer disable 3f2a9c1b77d0"],
    ],
  });
}
