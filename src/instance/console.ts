/**
 * The guest's console log, read from the host: its last lines for errors, and the ready and
 * failed lines the guest's init prints.
 */
import { readFile } from 'node:fs/promises';
import { failedMarker, readyMarker } from '../guest/layout.js';
import type { InstancePaths } from './paths.js';

const consoleTailLines = 20;

export async function consoleTail(path: string, lines = consoleTailLines): Promise<string[]> {
  const text = await readFile(path, 'latin1').catch(() => '');
  return text
    .replace(/\r/g, '')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .slice(-lines);
}

/** The guest's init prints the ready line once sshd listens and the store and binfmt are set up. */
export async function guestReportedReady(consoleLog: string): Promise<boolean> {
  const text = await readFile(consoleLog, 'latin1').catch(() => '');
  return text.includes(readyMarker);
}

/** The reason after the failure marker the guest's init prints when it gives up. */
export async function guestReportedFailure(consoleLog: string): Promise<string | undefined> {
  const text = await readFile(consoleLog, 'latin1').catch(() => '');
  const at = text.lastIndexOf(`${failedMarker}: `);
  if (at < 0) return undefined;
  return text.slice(at + failedMarker.length + 2).split(/\r?\n/)[0]?.trim();
}

/** The console tail, and the hypervisor's own complaints when it wrote any. */
export async function bootDiagnostics(paths: InstancePaths): Promise<string[]> {
  const consoleLines = await consoleTail(paths.consoleLog);
  const vmLines = await consoleTail(paths.processLog, 5);
  return vmLines.length > 0 ? [...consoleLines, ...vmLines.map((line) => `[vm] ${line}`)] : consoleLines;
}
