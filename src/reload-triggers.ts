/**
 * Reload triggers for `ringlb run`: SIGHUP, and with `--watch` a change of the config file.
 *
 * A reload reads and validates the whole file first (`loadConfigFile`, on a worker thread); an invalid file is refused
 * with every issue logged (`config reload refused`) and the running config stays untouched. A
 * valid one goes to `Ringlb.reload`, which applies it as a diff. Reloads never overlap: the
 * runtime queues them.
 */
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { loadConfigFileOffThread } from './config/load-off-thread.js';
import type { Logger } from './log.js';
import type { ReloadResult, Ringlb } from './runtime.js';

/** Quiet time after a change event before reading: one editor save is several events. */
export const CONFIG_WATCH_DEBOUNCE_MS = 100;

/** Reads, validates and applies the config file; a bad file is logged as refused and changes nothing. */
export async function reloadFromFile(ringlb: Ringlb, path: string): Promise<ReloadResult> {
  // Off the main thread: validating a big file must not freeze the connections being proxied.
  const result = await loadConfigFileOffThread(path);
  if (!result.ok) {
    const errors = result.issues.map((issue) => `${issue.path}: ${issue.message}`);
    ringlb.refuseReload(errors, result.issueCount);
    return { ok: false, errors };
  }
  return ringlb.reload(result.config, { path: resolve(path) });
}

export interface ReloadTriggers {
  /** Removes the SIGHUP handler and the file watcher. */
  stop(): void;
}

/**
 * SIGHUP always reloads. With `watchFile`, the config file's DIRECTORY is watched (editors and
 * `mv` replace the file, which a watch on the file itself would lose), events for other names are
 * ignored, and a change whose content equals the last one read is skipped (touch, chmod, the
 * second event of one save).
 */
export function installReloadTriggers(ringlb: Ringlb, path: string, logger: Logger, watchFile: boolean): ReloadTriggers {
  const absolute = resolve(path);
  const name = basename(absolute);
  let lastText = readText(absolute);
  const reload = (trigger: string): void => {
    lastText = readText(absolute);
    logger.info({ trigger, config: path }, 'config reload requested');
    reloadFromFile(ringlb, absolute).catch((error: unknown) => {
      logger.error({ err: error }, 'config reload failed');
    });
  };
  const onSighup = (): void => reload('SIGHUP');
  process.on('SIGHUP', onSighup);

  let watcher: FSWatcher | null = null;
  let debounce: NodeJS.Timeout | null = null;
  if (watchFile) {
    watcher = watch(dirname(absolute), { persistent: false }, (_event, changed) => {
      if (changed !== null && changed.toString() !== name) return;
      if (debounce !== null) clearTimeout(debounce);
      debounce = setTimeout(() => {
        debounce = null;
        const text = readText(absolute);
        // A file missing for a moment (between unlink and rename) is not a change worth refusing.
        if (text === null || text === lastText) return;
        reload('watch');
      }, CONFIG_WATCH_DEBOUNCE_MS);
    });
    watcher.on('error', (error) => logger.warn({ err: error.message }, 'config watch error'));
  }
  return {
    stop(): void {
      process.removeListener('SIGHUP', onSighup);
      watcher?.close();
      if (debounce !== null) clearTimeout(debounce);
    },
  };
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}
