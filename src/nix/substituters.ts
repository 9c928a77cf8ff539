/**
 * The guest gets the host's substituters, minus those it cannot reach: an offline guest would
 * otherwise wait on an unreachable cache at every build.
 */
const probeTimeoutMs = 2000;

async function reachable(url: string): Promise<boolean> {
  if (!/^https?:\/\//.test(url)) return false;
  try {
    const response = await fetch(`${url.replace(/\/$/, '')}/nix-cache-info`, { signal: AbortSignal.timeout(probeTimeoutMs) });
    await response.body?.cancel();
    return response.ok;
  } catch {
    return false;
  }
}

/** Keeps the HTTP(S) substituters that answer; all probes run at once, bounded by one timeout. */
export async function reachableSubstituters(urls: readonly string[]): Promise<string[]> {
  const results = await Promise.all(urls.map(async (url) => ((await reachable(url)) ? url : undefined)));
  return results.filter((url): url is string => url !== undefined);
}
