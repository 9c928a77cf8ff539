/**
 * The guest gets the host's substituters, minus those it cannot reach: an offline guest would
 * otherwise wait on an unreachable cache at every build.
 *
 * The probe uses node:http(s), not fetch: fetch's first use loads undici and its WebAssembly
 * parser, which the process keeps (an idle node held 7 MiB more after one fetch of an unreachable
 * URL, 12 MiB after a reachable HTTPS one; with node:https, 1.3 MiB), and the agent probes at
 * every boot.
 */
import { get as httpGet, type IncomingMessage } from 'node:http';
import { get as httpsGet } from 'node:https';

const probeTimeoutMs = 2000;
/** Redirects followed, as fetch would (a cache behind a CDN may answer with one). */
const maxRedirects = 3;

/** Whether GET url answers 2xx, following redirects; false on any error or when signal aborts. */
function answers(url: URL, signal: AbortSignal, redirects: number): Promise<boolean> {
  return new Promise((resolve) => {
    const get = url.protocol === 'https:' ? httpsGet : httpGet;
    const onResponse = (response: IncomingMessage): void => {
      const status = response.statusCode ?? 0;
      const location = response.headers.location;
      response.destroy();
      if (status >= 300 && status < 400 && location !== undefined && redirects > 0) {
        let next: URL;
        try {
          next = new URL(location, url);
        } catch {
          resolve(false);
          return;
        }
        resolve(/^https?:$/.test(next.protocol) ? answers(next, signal, redirects - 1) : false);
        return;
      }
      resolve(status >= 200 && status < 300);
    };
    // agent: false, so no idle connection is kept once the answer is read
    get(url, { signal, agent: false }, onResponse).on('error', () => resolve(false));
  });
}

async function reachable(url: string): Promise<boolean> {
  if (!/^https?:\/\//.test(url)) return false;
  let probe: URL;
  try {
    probe = new URL(`${url.replace(/\/$/, '')}/nix-cache-info`);
  } catch {
    return false;
  }
  return answers(probe, AbortSignal.timeout(probeTimeoutMs), maxRedirects);
}

/** Keeps the HTTP(S) substituters that answer; all probes run at once, bounded by one timeout. */
export async function reachableSubstituters(urls: readonly string[]): Promise<string[]> {
  const results = await Promise.all(urls.map(async (url) => ((await reachable(url)) ? url : undefined)));
  return results.filter((url): url is string => url !== undefined);
}
