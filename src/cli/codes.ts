import fs from 'node:fs';
import { CodeList, importCodeList, importedFile } from '../codes/icd10.ts';
import type { Config } from '../config/config.ts';
import { EXIT_OK, type Io, parseOptions, UsageError } from './output.ts';

const USAGE = 'codes needs: import FILE (an ICD-10-CM code list, e.g. icd10cm_codes_2026.txt), or: status';

/**
 * `custos codes import FILE`: validates a complete ICD-10-CM code list (the CMS/NCHS release
 * `icd10cm_codes_YYYY.txt`, or `CODE<TAB>title` lines) and installs it under the data folder, where
 * the server's code search prefers it over the bundled starter list (restart to load it).
 * `custos codes status`: which list the server will search and how many codes it has.
 */
export async function codes(args: string[], config: Config, io: Io): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'status') {
    parseOptions(rest, {});
    const list = CodeList.load(config.dataDir);
    io.stdout.write(`custos: ${list.source} ICD-10-CM list, ${list.size} codes\n`);
    return EXIT_OK;
  }
  if (sub !== 'import') {
    throw new UsageError(USAGE);
  }
  const { positionals } = parseOptions(rest, {}, 1);
  const file = positionals[0];
  if (!file) {
    throw new UsageError(USAGE);
  }
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new UsageError(`cannot read ${file}`);
  }
  const n = await importCodeList(config.dataDir, text, 'file');
  io.stdout.write(
    `custos: installed ${n} ICD-10-CM codes in ${importedFile(config.dataDir)}; restart the server to use them\n`,
  );
  return EXIT_OK;
}
