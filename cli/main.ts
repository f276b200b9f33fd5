/** The `diffim` command. */
import { parseArgs } from 'node:util';
import { describeError, EXIT, EXIT_HELP, UsageError } from './errors.ts';
import { formatInspect, inspectFile } from './inspect.ts';
import { demoCommand, subtractCommand } from './subtract.ts';

const HELP = `diffim — PSF-matched image subtraction for time-domain astronomy

Usage:
  diffim subtract --science FILE --template FILE --out DIR [options]
                           PSF-match and subtract; writes DIR/difference.fits, kernel.json, qa.json
      --preset NAME        default | delta-function | snap
      --mode MODE          convolveTemplate | convolveScience | auto
      --set KEY=VALUE      kernel configuration override (repeatable)
      --config FILE.json   {"preset", "kernel": {...}, "decorrelate"}
      --no-decorrelate     keep the difference's correlated noise
      --json               QA document on stdout
      --quiet              no progress on stderr
                           (diffim subtract --help: every option, the outputs, the config keys)
  diffim demo [--out DIR]  subtract the bundled real pair (pyDIA KB13475) into DIR
                           (default ./diffim-demo-output); the microlensing target is near (272, 223)
  diffim inspect FILE...   Describe each HDU of FITS files (type, size, BITPIX, compression, key cards)
      --json               one JSON document on stdout instead of the table
      --strict             refuse any deviation from FITS 4.0 (default: accept what astropy accepts, with warnings)
  diffim --help            this text

Errors are one line on stderr: diffim: <message> (set DIFFIM_DEBUG=1 for a stack trace).

${EXIT_HELP}`;

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
      process.stdout.write(HELP + '\n');
      return cmd ? EXIT.OK : EXIT.USAGE;
    }
    if (cmd === 'inspect') return await inspect(rest);
    if (cmd === 'subtract') return await subtractCommand(rest);
    if (cmd === 'demo') return await demoCommand(rest);
    throw new UsageError(`unknown command '${cmd}' (try diffim --help)`);
  } catch (e) {
    const { code, message } = describeError(e);
    process.stderr.write(`diffim: ${message.replace(/\s*\n\s*/g, ' ')}\n`);
    if (process.env.DIFFIM_DEBUG && e instanceof Error && e.stack) process.stderr.write(e.stack + '\n');
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
