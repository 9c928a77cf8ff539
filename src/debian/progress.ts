/** How far a fetch is, and the line a terminal shows for it. */

export interface FetchProgress {
  readonly stage: 'index' | 'download' | 'unpack';
  readonly packagesDone: number;
  readonly packagesTotal: number;
  readonly bytesDone: number;
  readonly bytesTotal: number;
}

const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);

/** "Debian packages: downloading 12/121, 45.3/212.4 MiB". */
export function progressLine(progress: FetchProgress): string {
  switch (progress.stage) {
    case 'index':
      return 'Debian packages: reading the package index';
    case 'download':
      return `Debian packages: downloading ${progress.packagesDone}/${progress.packagesTotal}, ${mib(progress.bytesDone)}/${mib(progress.bytesTotal)} MiB`;
    case 'unpack':
      return `Debian packages: unpacking ${progress.packagesDone}/${progress.packagesTotal}`;
  }
}
