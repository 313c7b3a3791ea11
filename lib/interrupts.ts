/**
 * Process-level, like lib/cli.ts: who answers Ctrl-C while the launcher's head starts run
 * (lib/fastpath.ts) and nobody else does yet (the CLI loading, the finish's module loading). The
 * stand-in exits 130, and head starts' exit handler (lib/build/headstart.ts) kills their process
 * groups and removes their files. Kept on globalThis: the CLI releases it, when it installs its own
 * handlers, from its own copy of this module. Node built-ins only.
 */
const interrupt = ((globalThis as Record<symbol, unknown>)[Symbol.for("kiln.headStartInterrupt")] ??= {
  armed: false,
  handler: () => process.exit(130),
}) as { armed: boolean; handler: () => void };

/** The stand-in answers from now on (the launcher, when it starts head starts or hands over to the CLI). */
export function armInterrupts(): void {
  if (interrupt.armed) return;
  process.on("SIGINT", interrupt.handler);
  process.on("SIGTERM", interrupt.handler);
  interrupt.armed = true;
}

/** Someone else answers from now on (the CLI, the launcher's finish). */
export function releaseInterrupts(): void {
  if (!interrupt.armed) return;
  process.off("SIGINT", interrupt.handler);
  process.off("SIGTERM", interrupt.handler);
  interrupt.armed = false;
}
