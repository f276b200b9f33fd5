/** The `diffim` command. */
import { parseArgs } from 'node:util';
import { describeError, EXIT, UsageError } from './errors.ts';
import { formatInspect, inspectFile } from './inspect.ts';

const HELP = `diffim — PSF-matched image subtraction for time-domain astronomy

Usage:
  diffim inspect FILE...   Describe each HDU of FITS files (type, size, BITPIX, compression, key cards)
      --json               one JSON document on stdout instead of the table
      --strict             refuse any deviation from FITS 4.0 (default: accept what astropy accepts, with warnings)
  diffim --help            this text

Exit codes: 0 ok, 2 usage, 3 bad FITS file, 4 I/O error (missing or unreadable file), 70 internal error.`;

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
      process.stdout.write(HELP + '\n');
      return cmd ? EXIT.OK : EXIT.USAGE;
    }
    if (cmd === 'inspect') return await inspect(rest);
    throw new UsageError(`unknown command '${cmd}' (try diffim --help)`);
  } catch (e) {
    const { code, message } = describeError(e);
    process.stderr.write(`diffim: ${message}\n`);
    return code;
  }
}

async function inspect(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args, allowPositionals: true, options: { json: { type: 'boolean' }, strict: { type: 'boolean' }, help: { type: 'boolean' } } });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (parsed.values.help) {
    process.stdout.write(HELP + '\n');
    return EXIT.OK;
  }
  if (parsed.positionals.length === 0) throw new UsageError('inspect needs at least one FILE');
  const results = [];
  let worst: number = EXIT.OK;
  for (const f of parsed.positionals) {
    try {
      const r = await inspectFile(f, parsed.values.strict ?? false);
      results.push(r);
      if (!parsed.values.json) process.stdout.write(formatInspect(r) + '\n');
    } catch (e) {
      const { code, message } = describeError(e);
      process.stderr.write(`diffim: ${message}\n`);
      if (parsed.values.json) results.push({ file: f, error: message });
      worst = Math.max(worst, code);
    }
  }
  if (parsed.values.json) process.stdout.write(JSON.stringify(results.length === 1 ? results[0] : results, null, 2) + '\n');
  return worst;
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('/cli/main.ts')) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
