import { Command, Option } from "clipanion";
import { KilnCommand } from "../base.js";
import { KilnError, ExitCode } from "../../core/errors.js";

abstract class DecideCommand extends KilnCommand {
  id = Option.String({ name: "id" });
  abstract readonly op: "approve" | "deny";

  async execute(): Promise<number> {
    const reporter = await this.reporter();
    const { adminRequest } = await import("../../remote/server.js");
    const a = await adminRequest(this.context.settings.configDir, { op: this.op, key: this.id });
    if (a.ok !== true) throw new KilnError(String(a.code ?? "KILN_PEER_ADMIN"), (Number(a.exitCode) || ExitCode.usage) as never, String(a.message ?? "the peer server refused"), { hint: a.hint as string | undefined });
    if (this.json) reporter.event({ type: "result", command: `peer ${this.op}`, id: a.id, label: a.label, pin: a.pin });
    else this.context.stdout.write(`${this.op === "approve" ? "Approved" : "Denied"} '${String(a.label)}' (pin ${String(a.pin).slice(0, 16)}…)\n`);
    return 0;
  }
}

export class PeerApproveCommand extends DecideCommand {
  readonly op = "approve";
  static override paths = [["peer", "approve"]];
  static override usage = Command.Usage({
    category: "Build peers",
    description: "Approve a waiting pairing request (on the peer)",
    details: `
      Run on the machine where \`kiln peer serve\` runs, after comparing the client's pin (shown by
      \`kiln peer list\` here and by \`kiln peer pair\` there). ID is the request id or a pin prefix.
    `,
    examples: [
      ["Approve request 3f2a9c0e1b", "$0 peer approve 3f2a9c0e1b"],
      ["Approve by pin prefix", "$0 peer approve 3f2a9c1b77d0"],
    ],
  });
}

export class PeerDenyCommand extends DecideCommand {
  readonly op = "deny";
  static override paths = [["peer", "deny"]];
  static override usage = Command.Usage({
    category: "Build peers",
    description: "Deny a waiting pairing request (on the peer)",
    details: "The client's `kiln peer pair` stops with exit code 8. Nothing is stored.",
    examples: [
      ["Deny request 3f2a9c0e1b", "$0 peer deny 3f2a9c0e1b"],
      ["Deny by pin prefix", "$0 peer deny 3f2a9c1b77d0"],
    ],
  });
}
