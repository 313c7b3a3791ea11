import { Command, Option } from "clipanion";
import { KilnCommand } from "../base.js";
import { KilnError, ExitCode } from "../../core/errors.js";

export class PeerCodeCommand extends KilnCommand {
  static override paths = [["peer", "code"]];
  static override usage = Command.Usage({
    category: "Build peers",
    description: "Print a new one-time pairing code (on the peer)",
    details: `
      Asks the running \`kiln peer serve\` (same config dir) for a fresh code: valid once, for ten minutes;
      any earlier code stops working. \`--window\` instead approves every pairing request for 5 minutes.
    `,
    examples: [
      ["A code for the next machine", "$0 peer code"],
      ["Approve all pairing requests for 5 minutes", "$0 peer code --window"],
    ],
  });

  window = Option.Boolean("--window", false, { description: "Open a 5-minute pairing window instead of printing a code" });

  async execute(): Promise<number> {
    const reporter = await this.reporter();
    const { adminRequest } = await import("../../remote/server.js");
    const a = await adminRequest(this.context.settings.configDir, { op: this.window ? "window" : "code" });
    if (a.ok !== true) throw new KilnError(String(a.code ?? "KILN_PEER_ADMIN"), ExitCode.remote, String(a.message ?? "the peer server refused"));
    if (this.json) reporter.event({ type: "result", command: "peer code", ...a });
    else if (this.window) this.context.stdout.write(`Pairing window open for ${String(a.expiresInSeconds)} s: requests are approved at once.\n`);
    else this.context.stdout.write(`${String(a.code)}\n(one-time, valid ${Number(a.expiresInSeconds) / 60} minutes: kiln peer pair URL --pin PIN --code ${String(a.code)})\n`);
    return 0;
  }
}
