/**
 * vfkit's command-line grammar, as vfkit v0.6 parses it (pkg/cmdline, pkg/config): flags, the
 * quote-aware `--bootloader` list, `--device` values split on every comma, each device's known
 * options, and the REST URI's rules. The contract the vfkit driver is tested against here, where
 * vfkit cannot run, and what the fake vfkit checks its argv with.
 */

export interface ParsedDevice {
  readonly kind: string;
  /** Options in order; a flag option (nat, connect) has the value ''. */
  readonly options: ReadonlyArray<readonly [string, string]>;
}

export interface ParsedVfkit {
  readonly cpus: number;
  readonly memoryMiB: number;
  readonly bootloader: { readonly kind: 'linux'; readonly kernel: string; readonly initrd: string; readonly cmdline: string };
  readonly devices: readonly ParsedDevice[];
  /** The REST socket's path (unix://), when the API is on. */
  readonly restSocket: string | undefined;
  readonly pidFile: string | undefined;
}

export class VfkitUsageError extends Error {}

const bad = (message: string): never => {
  throw new VfkitUsageError(message);
};

/** pflag's value flags with their short names; booleans take no value. */
const valueFlags = new Map([
  ['--cpus', 'cpus'], ['-c', 'cpus'],
  ['--memory', 'memory'], ['-m', 'memory'],
  ['--bootloader', 'bootloader'], ['-b', 'bootloader'],
  ['--device', 'device'], ['-d', 'device'],
  ['--kernel', 'kernel'], ['-k', 'kernel'],
  ['--initrd', 'initrd'], ['-i', 'initrd'],
  ['--kernel-cmdline', 'kernel-cmdline'], ['-C', 'kernel-cmdline'],
  ['--restful-uri', 'restful-uri'],
  ['--pidfile', 'pidfile'],
  ['--log-level', 'log-level'],
  ['--timesync', 'timesync'], ['-t', 'timesync'],
  ['--ignition', 'ignition'],
  ['--cloud-init', 'cloud-init'],
]);
const booleanFlags = new Set(['--gui', '--nested', '-n']);

/** A comma list where commas inside double quotes do not split; one pair of enclosing quotes is trimmed from each element. */
export function splitQuoted(value: string): string[] {
  const out: string[] = [];
  let current = '';
  let quoted = false;
  const trim = (s: string): string => (s.length >= 2 && s.startsWith('"') && s.endsWith('"') ? s.replace(/^"+|"+$/g, '') : s);
  for (const c of value) {
    if (quoted) {
      if (c === '"') quoted = false;
      current += c;
    } else if (c === ',') {
      out.push(trim(current));
      current = '';
    } else {
      if (c === '"') quoted = true;
      current += c;
    }
  }
  if (quoted) bad('mismatched "');
  if (out.length > 0 || current !== '') out.push(trim(current));
  return out;
}

function options(parts: readonly string[]): Array<[string, string]> {
  return parts.filter((p) => p !== '').map((p) => {
    const at = p.indexOf('=');
    return at < 0 ? [p, ''] : [p.slice(0, at), p.slice(at + 1)];
  });
}

const unsigned = (what: string, text: string, max = 2 ** 32 - 1): number => {
  if (!/^\d+$/.test(text) || Number(text) > max) bad(`invalid ${what}: ${JSON.stringify(text)}`);
  return Number(text);
};

/** Each device's options (pkg/config/virtio.go FromOptions); a flag option takes no value. */
const deviceOptions: Record<string, { readonly values: readonly string[]; readonly flags: readonly string[] }> = {
  'virtio-fs': { values: ['sharedDir', 'mountTag'], flags: [] },
  rosetta: { values: ['mountTag'], flags: ['install', 'ignore-if-missing'] },
  'virtio-blk': { values: ['path', 'type', 'deviceId'], flags: ['readonly'] },
  'virtio-vsock': { values: ['port', 'socketURL'], flags: ['listen', 'connect'] },
  'virtio-serial': { values: ['logFilePath'], flags: ['stdio', 'pty'] },
  'virtio-rng': { values: [], flags: [] },
  'virtio-balloon': { values: [], flags: [] },
  'virtio-net': { values: ['mac', 'fd', 'unixSocketPath', 'type', 'path', 'vfkitMagic', 'offloading'], flags: ['nat'] },
  'virtio-gpu': { values: ['width', 'height'], flags: [] },
  'virtio-input': { values: [], flags: ['keyboard', 'pointing'] },
  nvme: { values: ['path', 'type'], flags: ['readonly'] },
  'usb-mass-storage': { values: ['path', 'type'], flags: ['readonly'] },
  nbd: { values: ['uri', 'deviceId', 'sync', 'timeout'], flags: ['readonly'] },
};

export function parseDevice(value: string): ParsedDevice {
  const [kind = '', ...rest] = value.split(',');
  const known = deviceOptions[kind] ?? bad(`unknown device type: ${kind}`);
  const opts = options(rest);
  for (const [key, v] of opts) {
    if (known.flags.includes(key)) {
      // vfkit ignores a value after some flags and refuses it after others; we never write one
      if (v !== '') bad(`unexpected value for ${kind} '${key}' option: ${v}`);
    } else if (!known.values.includes(key)) {
      bad(`unknown option for ${kind} devices: ${key}`);
    }
  }
  const get = (key: string): string | undefined => opts.find(([k]) => k === key)?.[1];
  const has = (key: string): boolean => opts.some(([k]) => k === key);
  switch (kind) {
    case 'virtio-fs':
      if (!get('sharedDir')) bad('virtio-fs needs the path to the directory to share');
      if (Buffer.byteLength(get('mountTag') ?? '') >= 36) bad('virtio-fs mount tag must be shorter than 36 bytes');
      break;
    case 'rosetta':
      if (!get('mountTag')) bad('rosetta shares require a mount tag to be specified');
      break;
    case 'virtio-blk':
      if (!get('path')) bad('virtio-blk devices need the path to a disk image');
      break;
    case 'virtio-vsock':
      if (!get('socketURL')) bad('virtio-vsock needs both a port and a socket URL');
      if (unsigned('vsock port', get('port') ?? '') === 0) bad('virtio-vsock needs both a port and a socket URL');
      break;
    case 'virtio-serial': {
      const set = [get('logFilePath') ? 1 : 0, has('stdio') ? 1 : 0, has('pty') ? 1 : 0].reduce((a, b) => a + b, 0);
      if (set !== 1) bad("one of 'logFilePath', 'stdio' or 'pty' must be set");
      break;
    }
    case 'virtio-net': {
      const mac = get('mac');
      if (mac !== undefined && !/^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$/.test(mac)) bad(`address ${mac}: invalid MAC address`);
      const attachments = [has('nat'), has('fd'), has('unixSocketPath') || has('path')].filter(Boolean).length;
      if (attachments > 1) bad("'nat', 'fd' and 'unixSocketPath' cannot be set at the same time");
      break;
    }
  }
  return { kind, options: opts };
}

function parseBootloader(parts: readonly string[]): ParsedVfkit['bootloader'] {
  const [kind, ...rest] = parts;
  if (kind !== 'linux') bad(kind === 'efi' || kind === 'macos' ? `the builder boots only "linux", not ${kind}` : `unknown bootloader type: ${kind}`);
  let kernel = '';
  let initrd = '';
  let cmdline = '';
  for (const [key, value] of options(rest)) {
    if (key === 'kernel') kernel = value;
    else if (key === 'initrd') initrd = value;
    else if (key === 'cmdline') cmdline = value.startsWith('"') && value.endsWith('"') ? value.replace(/^"+|"+$/g, '') : value;
    else bad(`unknown option for Linux bootloaders: ${key}`);
  }
  if (kernel === '') bad('missing kernel path');
  if (initrd === '') bad('missing initrd path');
  if (cmdline === '') bad('missing kernel command line');
  return { kind: 'linux', kernel, initrd, cmdline };
}

const maxSocketPathLength = 103;

/** unix:///path, tcp://host:port or none:// (pkg/rest parseRestfulURI). */
function parseRestfulUri(uri: string): string | undefined {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return bad(`invalid restful URI ${JSON.stringify(uri)}`);
  }
  if (url.protocol === 'none:') return undefined;
  if (url.protocol === 'tcp:' || url.protocol === 'http:') {
    if (url.hostname === '' || url.port === '') bad('invalid TCP uri: missing host or port');
    return undefined;
  }
  if (url.protocol !== 'unix:') return bad(`invalid scheme ${url.protocol.slice(0, -1)}`);
  if (url.host !== '') bad('invalid unix uri: host is forbidden');
  if (url.search !== '' || url.hash !== '') bad('invalid unix uri: the path would lose its ? or # part');
  const path = decodeURIComponent(url.pathname);
  if (path === '' || path === '/') bad('invalid unix uri: missing path');
  if (path.length > maxSocketPathLength) bad('invalid unix uri: socket path length exceeds macOS limits');
  return path;
}

/** Parses vfkit's arguments (without argv[0]) as vfkit would, or throws a VfkitUsageError saying what vfkit would refuse. */
export function parseVfkitArgs(args: readonly string[]): ParsedVfkit {
  const values = new Map<string, string[]>();
  const booleans = new Set<string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    if (booleanFlags.has(flag)) {
      booleans.add(flag);
      continue;
    }
    const name = valueFlags.get(flag) ?? bad(arg.startsWith('-') ? `unknown flag: ${flag}` : `unexpected argument: ${arg}`);
    const value = eq > 0 ? arg.slice(eq + 1) : args[++i];
    if (value === undefined) bad(`flag needs an argument: ${flag}`);
    values.set(name, [...(values.get(name) ?? []), value as string]);
  }
  const one = (name: string): string | undefined => {
    const list = values.get(name);
    if (list !== undefined && list.length > 1 && name !== 'bootloader') bad(`--${name} given ${list.length} times`);
    return list?.at(-1);
  };
  if (values.has('bootloader') && (values.has('kernel') || values.has('initrd') || values.has('kernel-cmdline'))) {
    bad('if any flags in the group [kernel bootloader] are set none of the others can be');
  }
  if (!values.has('bootloader')) bad('the builder is booted with --bootloader linux,…');
  // pflag's string slice: repeated --bootloader values append
  const bootloader = parseBootloader((values.get('bootloader') ?? []).flatMap(splitQuoted));
  const devices = (values.get('device') ?? []).map(parseDevice);
  const restUri = one('restful-uri');
  return {
    cpus: unsigned('--cpus', one('cpus') ?? '1'),
    memoryMiB: unsigned('--memory', one('memory') ?? '512'),
    bootloader,
    devices,
    restSocket: restUri === undefined ? undefined : parseRestfulUri(restUri),
    pidFile: one('pidfile'),
  };
}

/** The value of a device's option, e.g. option(dev, 'sharedDir'). */
export function deviceOption(device: ParsedDevice, key: string): string | undefined {
  return device.options.find(([k]) => k === key)?.[1];
}
