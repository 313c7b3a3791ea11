import { createInterface } from "node:readline/promises";
import { Command, Option } from "clipanion";
import { KilnCommand } from "../base.js";

export class PeerPairCommand extends KilnCommand {
  static override paths = [["peer", "pair"]];
  static override usage = Command.Usage({
    category: "Build peers",
    description: "Pair this machine with a build peer",
    details: `
      Connects to the peer, shows its pin (the SHA-256 of its public key) and, unless \`--pin\` is given,
      asks you to compare it with the one \`kiln peer serve\` printed there. The pairing request then
      travels over a connection that trusts only that key. With the peer's one-time \`--code\` (or inside
      its \`--pair\` window) it is approved at once; otherwise kiln waits until the peer's operator runs
      \`kiln peer approve ID\`. The peer is stored in the config dir (0600).
    `,
    examples: [
      ["Pair with the pin and code the peer printed", "$0 peer pair https://buildbox.local:7420 --pin 3f2a…c01d --code K7QD-M2XH"],
      ["Pair interactively, naming the peer 'lab'", "$0 peer pair buildbox.local --name lab"],
    ],
  });

  url = Option.String({ name: "url" });
  pin = Option.String("--pin", { description: "The peer's pin as printed by 'kiln peer serve' (required without a terminal)" });
  code = Option.String("--code", { description: "The peer's one-time pairing code" });
  name = Option.String("--name", { description: "What to call the peer here (default: its own label)" });
  wait = Option.String("--wait", "600", { description: "Seconds to wait for the peer's operator to approve" });

  async execute(): Promise<number> {
    const reporter = await this.reporter();
    const { pairWithPeer } = await import("../../remote/pair.js");
    const { formatPin, pinWords } = await import("../../remote/identity.js");
    const stdin = this.context.stdin as NodeJS.ReadStream;
    const interactive = Boolean(stdin.isTTY) && this.context.isTTY;
    const confirm = interactive
      ? async (pin: string): Promise<boolean> => {
          this.context.stderr.write(`The peer's pin is\n  ${formatPin(pin)}\n  (${pinWords(pin)})\n`);
          const rl = createInterface({ input: stdin, output: this.context.stderr });
          try {
            return /^y(es)?$/i.test((await rl.question("Does it match the pin 'kiln peer serve' shows there? [y/N] ")).trim());
          } finally {
            rl.close();
          }
        }
      : undefined;
    const { peer, answer } = await pairWithPeer({
      url: this.url,
      configDir: this.context.settings.configDir,
      pin: this.pin,
      code: this.code,
      name: this.name,
      confirm,
      waitMs: Math.max(1, Number(this.wait) || 600) * 1000,
      signal: this.context.signal,
      onPending: (id, myPin) => {
        if (this.json) reporter.event({ type: "pairing-pending", id, pin: myPin });
        else this.context.stderr.write(`Waiting for approval on the peer: run 'kiln peer approve ${id}' there.\nThis machine's pin: ${formatPin(myPin)}\n  (${pinWords(myPin)})\n`);
      },
    });
    if (this.json) reporter.event({ type: "result", command: "peer pair", label: peer.label, url: peer.url, pin: peer.pin, status: answer.status });
    else this.context.stdout.write(`Paired with '${peer.label}' at ${peer.url} (pin ${formatPin(peer.pin)}).\nBuilds now use it when it is free: kiln build --remote auto (the default).\n`);
    return 0;
  }
}
