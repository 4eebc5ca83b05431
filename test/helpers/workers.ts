import { type ChildProcess, fork } from 'node:child_process';

/**
 * Worker processes of one test file, forked from a TypeScript script (`--import tsx`): each
 * says it is ready with a first message (`{ ready: false, error }` means it failed to start),
 * then answers `{ go: plan }` with `{ report }`. killAll() in afterEach stops any still running.
 */
export class Workers {
  private children: ChildProcess[] = [];

  constructor(private readonly script: string) {}

  /** Forks a worker with `args` and resolves once it is ready. */
  start(args: string[], name = args.at(-1) ?? 'worker'): Promise<ChildProcess> {
    const child = fork(this.script, args, { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.children.push(child);
    return new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`worker ${name} exited early with ${code}`)));
      child.once('message', (m: { ready?: boolean; error?: string } | string) =>
        typeof m === 'object' && m !== null && m.ready === false ? reject(new Error(m.error)) : resolve(child),
      );
    });
  }

  /** Sends the worker its plan and resolves with its report. */
  result<Plan, Report>(child: ChildProcess, plan: Plan): Promise<Report> {
    return new Promise((resolve, reject) => {
      child.removeAllListeners('exit');
      child.once('exit', (code) => reject(new Error(`worker exited with ${code} before reporting`)));
      child.once('message', (msg: { report: Report }) => resolve(msg.report));
      child.send({ go: plan });
    });
  }

  /** SIGKILLs every worker still running. */
  killAll(): void {
    for (const c of this.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    this.children = [];
  }
}
