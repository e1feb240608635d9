#!/usr/bin/env node
/**
 * ringlb command line.
 *
 *   ringlb run --config F [--watch]   serve until SIGTERM/SIGINT (first: drain; second: exit at
 *                                     once); SIGHUP (or, with --watch, a change of F) reloads
 *   ringlb check --config F   validate only: exit 0 with a summary, or exit 2 with every issue
 *   ringlb diff OLD NEW       what a reload from OLD to NEW would change (keys moved per pool)
 *   ringlb demo [--port N]    three echo backends behind a maglev listener (default port 8080)
 *
 * Exit codes: 0 ok, 1 runtime failure (e.g. a port in use), 2 usage or config error. User errors
 * print a message, never a stack trace.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { formatIssues, loadConfigFile } from './config/load.js';
import type { RinglbConfig } from './config/types.js';
import { DEMO_DEFAULT_PORT, demoInstructions, startDemo } from './demo.js';
import { createRootLogger, type Logger } from './log.js';
import { runDiffCommand } from './config/plan-report.js';
import { planWorkers } from './config/workers.js';
import { Ringlb } from './runtime.js';
import { installReloadTriggers } from './reload-triggers.js';
import { ringlbVersion } from './version.js';

const EXIT_OK = 0;
const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;

const USAGE = `Usage:
  ringlb run --config <file> [--watch]
                                 run the load balancer; SIGHUP reloads the config, and with
                                 --watch so does any change of the file (an invalid config is
                                 refused and the running one stays)
  ringlb check --config <file>   validate a config: exit 0 (warnings, such as more workers than
                                 this Node can run, on stderr), or exit 2 listing every error
  ringlb diff <old.json> <new.json>
                                 print what a reload from old to new would do (backends added,
                                 removed, reweighted; share of keys that move); changes nothing
  ringlb demo [--port <port>]    echo backends behind a maglev listener (default port ${DEMO_DEFAULT_PORT})
  ringlb --help | --version
`;

/** A mistake of the user's: printed as a message (no stack), exit 2. */
class UsageError extends Error {}

interface ParsedCommand {
  readonly command: 'run' | 'check' | 'diff' | 'demo' | 'help' | 'version';
  readonly configPath?: string;
  readonly port?: number;
  /** run: reload when the config file changes. */
  readonly watch?: boolean;
  /** diff: the two configs. */
  readonly oldPath?: string;
  readonly newPath?: string;
}

export function parseCommandLine(argv: readonly string[]): ParsedCommand {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        config: { type: 'string', short: 'c' },
        port: { type: 'string', short: 'p' },
        watch: { type: 'boolean', short: 'w' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help === true) return { command: 'help' };
  if (values.version === true) return { command: 'version' };
  if (positionals.length === 0) throw new UsageError('missing command');
  const command = positionals[0]!;
  if (command === 'diff') {
    if (values.config !== undefined || values.port !== undefined || values.watch !== undefined) {
      throw new UsageError("'diff' takes two config files and no options: ringlb diff <old.json> <new.json>");
    }
    if (positionals.length !== 3) throw new UsageError("'diff' needs two config files: ringlb diff <old.json> <new.json>");
    return { command, oldPath: positionals[1], newPath: positionals[2] };
  }
  if (positionals.length > 1) throw new UsageError(`unexpected argument '${positionals[1]}'`);
  if (values.watch !== undefined && command !== 'run') throw new UsageError(`'--watch' applies to 'run' only`);
  switch (command) {
    case 'run':
    case 'check': {
      if (values.port !== undefined) throw new UsageError(`'${command}' takes no --port (ports come from the config)`);
      if (values.config === undefined || values.config === '') throw new UsageError(`'${command}' needs --config <file>`);
      return command === 'run' ? { command, configPath: values.config, watch: values.watch === true } : { command, configPath: values.config };
    }
    case 'demo': {
      if (values.config !== undefined) throw new UsageError("'demo' takes no --config");
      if (values.port === undefined) return { command, port: DEMO_DEFAULT_PORT };
      const port = Number(values.port);
      if (!/^\d+$/.test(values.port) || port > 65535) {
        throw new UsageError(`--port must be an integer 0..65535, got '${values.port}'`);
      }
      return { command, port };
    }
    case 'help':
      return { command: 'help' };
    default:
      throw new UsageError(`unknown command '${command}'`);
  }
}

/**
 * Load and validate; on failure print every issue, set exit status 2 and return undefined. The
 * caller returns and the process ends once stderr has drained: `process.exit()` here cut piped
 * output at the pipe's 64 KiB buffer (`ringlb check ... 2>&1 | cat`).
 */
function loadConfigOrFail(path: string): RinglbConfig | undefined {
  const result = loadConfigFile(path);
  if (!result.ok) {
    process.stderr.write(`${formatIssues(result.issues, path)}\n`);
    process.exitCode = EXIT_USAGE;
    return undefined;
  }
  return result.config;
}

/**
 * Exits with `code` once everything written to stdout and stderr so far has reached the OS. For
 * the paths that must end the process while handles may still be open (a signal, a failed start);
 * a write's callback runs after every earlier write on that stream has been flushed.
 */
function exitAfterOutput(code: number): void {
  process.exitCode = code;
  let pending = 2;
  const done = (): void => {
    if (--pending === 0) process.exit(code);
  };
  process.stdout.write('', done);
  process.stderr.write('', done);
}

/**
 * First SIGTERM/SIGINT: stop listening at once, drain until `drainTimeoutMs`, run `afterDrain`,
 * exit 0. A second signal exits at once (status 1: the drain was cut short).
 */
function exitOnSignals(ringlb: Ringlb, drainTimeout: number | (() => number), logger: Logger, afterDrain?: () => Promise<void>): void {
  let draining = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    const drainTimeoutMs = typeof drainTimeout === 'number' ? drainTimeout : drainTimeout();
    if (draining) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(EXIT_FAILURE);
    }
    draining = true;
    // Close the listening sockets before saying so: whoever reads "draining" may rely on refusal.
    ringlb
      .stopListening()
      .then(() => {
        logger.info({ signal, drainTimeoutMs }, 'draining');
        return ringlb.drain(drainTimeoutMs);
      })
      .then(async (result) => {
        await afterDrain?.();
        logger.info({ forced: result.forced, elapsedMs: result.elapsedMs }, 'drained, exiting');
        exitAfterOutput(EXIT_OK);
      })
      .catch((error: unknown) => {
        logger.error({ err: error }, 'drain failed');
        exitAfterOutput(EXIT_FAILURE);
      });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

async function main(argv: readonly string[]): Promise<void> {
  const parsed = parseCommandLine(argv);
  switch (parsed.command) {
    case 'help':
      process.stdout.write(USAGE);
      return;
    case 'version':
      process.stdout.write(`ringlb ${ringlbVersion()}\n`);
      return;
    case 'diff': {
      // Issues go to stderr (as `check` prints them), the report to stdout.
      let invalid = false;
      for (const path of [parsed.oldPath!, parsed.newPath!]) {
        const result = loadConfigFile(path);
        if (!result.ok) {
          process.stderr.write(`${formatIssues(result.issues, path)}\n`);
          invalid = true;
        }
      }
      if (invalid) {
        process.exitCode = EXIT_USAGE;
        return;
      }
      process.exitCode = runDiffCommand(parsed.oldPath!, parsed.newPath!, (text) => process.stdout.write(`${text}\n`));
      return;
    }
    case 'check': {
      const config = loadConfigOrFail(parsed.configPath!);
      if (config === undefined) return;
      const backends = config.pools.reduce((sum, pool) => sum + pool.backends.length, 0);
      process.stdout.write(
        `${parsed.configPath}: ok (${config.listeners.length} listener(s), ${config.pools.length} pool(s), ${backends} backend(s))\n`,
      );
      // The same plan `run` starts with on this Node; a warning is advice, not an error: exit 0.
      const workers = planWorkers(config.workers);
      if (workers.warning !== null) process.stderr.write(`${parsed.configPath}: warning: ${workers.warning}\n`);
      return;
    }
    case 'run': {
      const config = loadConfigOrFail(parsed.configPath!);
      if (config === undefined) return;
      const logger = createRootLogger({ level: config.log.level });
      const ringlb = new Ringlb({ logger });
      // Installed before start: a SIGHUP during start-up must not kill the process (Node's
      // default for SIGHUP is to exit); it reloads once the runtime is up (reloads queue).
      const triggers = installReloadTriggers(ringlb, parsed.configPath!, logger, parsed.watch === true);
      try {
        await ringlb.start(config, { path: resolve(parsed.configPath!) });
      } catch (error) {
        triggers.stop();
        logger.error({ error: error instanceof Error ? error.message : String(error) }, 'start failed');
        throw error;
      }
      warnIfFileDescriptorsShort(config, logger);
      // logrotate: rename the access-log file, then SIGUSR1; every thread opens the path again.
      // Installing this handler replaces Node's own SIGUSR1 use (starting the inspector):
      // `node --inspect` at start still works (docs/operations.md).
      process.on('SIGUSR1', () => {
        void ringlb.reopenAccessLog();
      });
      if (process.env['RINGLB_TEST_HOOKS'] === '1') {
        // Test-only fault hook: SIGUSR2 makes data-plane worker 0 throw an uncaught exception.
        process.on('SIGUSR2', () => {
          ringlb.crashWorkerForTest(0).catch((error: unknown) => logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'crash-for-test refused'));
        });
      }
      // The drain timeout in force when the signal arrives (a reload may have changed it).
      exitOnSignals(ringlb, () => ringlb.config?.drainTimeoutMs ?? config.drainTimeoutMs, logger, async () => triggers.stop());
      return;
    }
    case 'demo': {
      const logger = createRootLogger({ level: 'info' });
      const demo = await startDemo(parsed.port!, logger);
      process.stderr.write(demoInstructions(demo.address));
      exitOnSignals(demo.ringlb, demo.drainTimeoutMs, logger, demo.closeBackends);
      return;
    }
  }
}

/**
 * Every proxied connection holds two file descriptors. When the soft RLIMIT_NOFILE cannot hold
 * every listener's maxConnections, the kernel refuses accepts or upstream connects long before the
 * configured limit is reached; say so once at start (Linux: /proc/self/limits; elsewhere skip).
 */
function warnIfFileDescriptorsShort(config: RinglbConfig, logger: Logger): void {
  let limits: string;
  try {
    limits = readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return;
  }
  const match = /^Max open files\s+(\d+|unlimited)/m.exec(limits);
  if (match === null || match[1] === 'unlimited') return;
  const softLimit = Number(match[1]);
  const needed = config.listeners.reduce((sum, listener) => sum + listener.maxConnections * 2, 0) + 64;
  if (needed > softLimit) {
    logger.warn(
      { openFilesLimit: softLimit, needed },
      'file descriptor limit is below what maxConnections needs (2 per connection); raise it with `ulimit -n` or lower maxConnections',
    );
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof UsageError) {
    process.stderr.write(`ringlb: ${error.message}\n\n${USAGE}`);
    exitAfterOutput(EXIT_USAGE);
    return;
  }
  // Start-up failures such as a port in use are expected operational errors: message only.
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`ringlb: ${message}\n`);
  exitAfterOutput(EXIT_FAILURE);
});
