/**
 * The fenced TypeScript examples of the README and the docs, and running them as programs
 * (each its own working folder inside a scratch app that installed the packed packages).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Example {
  /** The markdown file, relative to the repository. */
  doc: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** `title="…"` of the fence: the file name the example is saved as. */
  title: string | undefined;
  /** ```ts fragment: a piece of a program, not run (kept few). */
  fragment: boolean;
  code: string;
}

/** Every ```ts / ```typescript block of a markdown file, with its fence's attributes. */
export function extractExamples(root: string, doc: string): Example[] {
  const lines = readFileSync(join(root, doc), 'utf8').split('\n');
  const out: Example[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w+)(.*)$/.exec(lines[i] as string);
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i] as string); i++) body.push(lines[i] as string);
    const lang = open[1] as string;
    if (lang !== 'ts' && lang !== 'typescript') continue;
    const attrs = open[2] ?? '';
    out.push({
      doc,
      line: start + 1,
      title: /title="([^"]+)"/.exec(attrs)?.[1],
      fragment: /\bfragment\b/.test(attrs),
      code: `${body.join('\n')}\n`,
    });
  }
  return out;
}

export interface Program {
  child: ChildProcess;
  /** stdout and stderr so far. */
  output: () => string;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  kill: () => Promise<void>;
}

/**
 * Starts `node <args>`, e.g. `--import <tsx> app.ts` (the repository's tsx, so the scratch app
 * need not install it).
 */
export function startProgram(args: string[], cwd: string, env: NodeJS.ProcessEnv): Program {
  const child = spawn(process.execPath, args, {
    cwd,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, NODE_ENV: 'development', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return {
    child,
    output: () => out,
    exited,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Waits (bounded) for a line of the program's output that matches; rejects when it exits first. */
export async function waitForOutput(p: Program, pattern: RegExp, timeoutMs = 30_000): Promise<RegExpExecArray> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const check = () => {
      const m = pattern.exec(p.output());
      if (m) return done(() => resolve(m));
      if (p.child.exitCode !== null) return done(() => reject(new Error(`exited (${p.child.exitCode}) before ${pattern}:\n${p.output()}`)));
      if (Date.now() > deadline) return done(() => reject(new Error(`no ${pattern} within ${timeoutMs} ms:\n${p.output()}`)));
    };
    const done = (fn: () => void) => {
      p.child.stdout?.off('data', check);
      p.child.stderr?.off('data', check);
      p.child.off('close', check);
      clearInterval(timer);
      fn();
    };
    // Checked on every chunk, plus a coarse timer for the deadline.
    const timer = setInterval(check, 500);
    p.child.stdout?.on('data', check);
    p.child.stderr?.on('data', check);
    p.child.on('close', check);
    check();
  });
}
