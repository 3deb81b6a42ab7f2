/**
 * The signatures behind `detectInjection`. Signatures, not a WAF: each pattern names one shape of
 * attack that has no business in a clinic request, and each is made narrow enough that clinical
 * text passes. A false positive is expensive here (strikes lead to an address block that locks a
 * whole practice out), so when precision and recall pull apart, these patterns choose precision
 * and the real defences stay where they are: parameterised SQL (kysely), output encoding and the
 * CSP, no shell anywhere, no file paths built from input.
 *
 * Precision devices used throughout, each justified by a real clinical near-miss:
 * - SQL keywords count only next to SQL structure: a quote before `OR` *and* a tautology after it
 *   ("he said 'no' or maybe" passes), `UNION SELECT` as adjacent words ("union of fracture" passes),
 *   stacked statements with their object (`; DROP TABLE x`, not "; drop in BP").
 * - Shell commands count only after a shell separator *and* with a shell-shaped argument (a path,
 *   a flag, `$`, a URL), and are matched case-sensitively because shells are: "; cat scratch fever",
 *   "ls (left side)", "RM 12", "CP 3/10" pass.
 * - Markup counts only as a tag: `<` directly followed by a tag name ("<5% body fat" passes).
 * - No two quantifiers that can match the same characters side by side, and bounded repetition
 *   (`{0,256}`) where a scan could restart at many positions, so no pattern backtracks
 *   quadratically on a long note (the test suite times each one on hostile 100 kB inputs).
 */

export type InjectionRule = 'sql-injection' | 'script-injection' | 'path-traversal' | 'command-injection';

export interface Signature {
  readonly rule: InjectionRule;
  /** Short name for tests and for reading; never reported to the client. */
  readonly name: string;
  readonly pattern: RegExp;
  /** Only applies to the URL path (a bare `..` segment is traversal there, an ellipsis elsewhere). */
  readonly pathOnly?: boolean;
}

/** Whitespace as SQL sees it: spaces, `+` (form encoding) and inline comments used as spaces. */
const G = String.raw`(?:\s|\+|/\*[^*]{0,64}\*/)`;
/** A quote that closes the application's string literal, optionally followed by closing parens. */
const Q = String.raw`['"]\)*`;
/**
 * The same, but only the first quote of the value. The look-behind sits after the quote so it runs
 * at quotes only; `^[^'"]*` up front would be retried at every position of every note.
 */
const FIRST_Q = String.raw`['"](?<=^[^'"]*['"])\)*`;
const sql = (name: string, source: string): Signature => ({
  rule: 'sql-injection',
  name,
  pattern: new RegExp(source, 'i'),
});

const SQL: readonly Signature[] = [
  // `' OR '1'='1`, `" or ""="`, `') or ('a'='a`: both sides of the comparison are the same quoted
  // literal (backreferences), which is what makes it a tautology and not "said 'no' or x=3".
  sql(
    'quoted tautology',
    String.raw`${Q}${G}*(?:or|and|xor|\|\||&&)${G}+\(*(['"])(\w*)\1${G}*(?:=|<=>|like\b)${G}*\(*\1\2(?!\w)`,
  ),
  // `' or 1=1--`, `' OR a LIKE a`: the same bare word or number on both sides.
  sql(
    'quoted bare tautology',
    String.raw`${Q}${G}*(?:or|and|xor|\|\||&&)${G}+\(*(\w+)${G}*(?:=|<=>|like\b)${G}*\(*\1(?!\w)`,
  ),
  // `' or true--`: only with a terminator after it.
  sql('quoted true', String.raw`${Q}${G}*(?:or|\|\|)${G}+true${G}*(?:--|#|;|$)`),
  // `1 OR 1=1` in a numeric parameter; only with a terminator after it ("1=1 ratio" passes).
  sql('numeric tautology', String.raw`\d${G}+(?:or|and)${G}+(\d+)${G}*=${G}*\1${G}*(?:--|#|;|\)|$)`),
  sql('union select', String.raw`\bunion(?:${G}|\()+(?:all${G}+|distinct${G}+)?\(*select\b`),
  sql(
    'stacked drop',
    String.raw`;${G}*drop${G}+(?:table|database|schema|view|index|user)${G}+[\w."\[\]\x60]`,
  ),
  sql('stacked delete', String.raw`;${G}*delete${G}+from${G}+[\w."\[\]\x60]+${G}*(?:where\b|--|#|;)`),
  sql('stacked insert', String.raw`;${G}*insert${G}+into${G}+[\w."\[\]\x60]+${G}*(?:\(|values\b|select\b)`),
  sql('stacked update', String.raw`;${G}*update${G}+[\w."\[\]\x60]+${G}+set${G}+[\w."\x60]+${G}*=`),
  sql(
    'stacked ddl',
    String.raw`;${G}*(?:truncate${G}+table|(?:alter|create)${G}+(?:table|database|procedure|function|trigger)|declare${G}+@)\b`,
  ),
  sql('stacked exec', String.raw`;${G}*exec(?:ute)?${G}+(?:xp_|sp_|master\.)`),
  // The next three look at the *first* quote of the value only: an attacker's quote closes the
  // application's literal and comes first ("admin'--"), while in prose the first quote opens a
  // quotation or is an apostrophe ("said 'no'-- then agreed", "O'Brien -- seen").
  // `x'; DELETE FROM users`, `'; SHUTDOWN--`: after the quote a new statement starts.
  sql(
    'quote then statement',
    String.raw`${FIRST_Q}${G}*;${G}*(?:select${G}[^;]{0,128}?\bfrom\b|delete${G}+from|insert${G}+into|shutdown${G}*(?:--|#|;|$))`,
  ),
  // `admin'--`, `x' #`: a comment cutting off the rest of the query.
  // (`G*(?:;G*)?`, not `G*;?G*`: two adjacent `G*` would split a run of spaces every possible way.)
  sql('quote then comment', String.raw`${FIRST_Q}${G}*(?:;${G}*)?(?:--(?:\s|-|$)|#(?:\s|$))`),
  sql('quote then order by', String.raw`${FIRST_Q}${G}+order${G}+by${G}+\d+${G}*(?:--|#|;|$)`),
  // `UNION/**/SELECT`, `/*!50000union*/`: inline comments glued to SQL keywords. Anchored on the
  // literal `/*` with the keywords in look-arounds *after* it: a look-behind at the front would be
  // tried at every position of every note (measured: 10x slower).
  sql(
    'keyword comment',
    String.raw`/\*(?:[^*]{0,64}\*/(?:(?<=\b(?:select|union|from|where|or|and|insert|update|delete|drop|order|having)/\*[^*]{0,64}\*/)|(?=(?:select|union|from|where|or|and|all|insert|update|delete|drop|order|concat|char)\b))|!\d{0,5}\s*(?:select|union|and|or|insert|update|delete|drop)\b)`,
  ),
  // Time-based blind injection. MySQL wants no space before `(`, so "sleep (7h)" stays clinical;
  // a bare `sleep(5)` also needs SQL just before it (`AND`, `OR`, `||`, a quote, `(`, `=`, `,`).
  sql(
    'time delay',
    String.raw`\b(?:pg_sleep${G}*\(|benchmark${G}*\(${G}*\d+${G}*,|waitfor${G}+(?:delay|time)${G}*['"])|sleep\((?<=(?:\b(?:and|or|select|if|xor)|\|\||&&|[('"=;,])${G}*sleep\()${G}*\d+(?:\.\d+)?${G}*\)`,
  ),
  sql(
    'catalog or procedure',
    String.raw`\b(?:information_schema|xp_cmdshell|sp_executesql|sp_oacreate|pg_catalog|sqlite_master|sysobjects|syscolumns|dbms_pipe|dbms_lock|utl_http|load_file)\b|@@version\b|\binto${G}+(?:out|dump)file\b`,
  ),
];

const script = (name: string, pattern: RegExp): Signature => ({ rule: 'script-injection', name, pattern });

const SCRIPT: readonly Signature[] = [
  script('script tag', /<\/?script\b/i),
  script('frame or plugin tag', /<(?:i?frame|frameset|object|embed|applet)\b/i),
  script('meta refresh or base', /<meta\b[^<>]{0,256}?http-equiv|<base\b[^<>]{0,256}?\bhref\s*=/i),
  // `<img src=x onerror=…>`, `<svg/onload=…>`: a tag name, then an `on…=` attribute inside the tag.
  // "onset=", "ongoing=" are clinical words, not handlers.
  script(
    'event handler attribute',
    /<[a-z][\w:-]{0,32}(?:[\s/][^<>]{0,256}?)?[\s/"']on(?!set\b|going\b)[a-z]{3,32}\s*=/i,
  ),
  // Browsers drop tabs and newlines inside a scheme, hence `\s*` between the letters.
  script('script url', /\bj\s*a\s*v\s*a\s*s\s*c\s*r\s*i\s*p\s*t\s*:|\bvbscript\s*:|\blivescript\s*:/i),
  script('srcdoc attribute', /\bsrcdoc\s*=/i),
  script(
    'html data url',
    /\bdata\s*:\s*(?:text\/html|image\/svg\+xml|(?:text|application)\/(?:x-)?(?:java|ecma)script)/i,
  ),
];

/**
 * Shell commands that only appear as commands (case-sensitive, lower case). Clinical
 * abbreviations that double as command names stay out: head, tail, touch, find, more, less, kill,
 * sleep, id, ps, dir, env (for those see SUBSTITUTED), and cat/ls/rm/cp/mv need an argument that
 * only a shell would take.
 */
const COMMANDS = `(?:cat|tac|ls|rm|cp|mv|chmod|chown|wget|curl|nc|ncat|netcat|telnet|bash|sh|zsh|ksh|python[23]?|perl|php|ruby|ping|nslookup|echo|printf|nohup|uname|whoami|ifconfig|ipconfig|netstat|base64|powershell|certutil)`;
/** A shell-shaped argument: optional flags (`-c 10`), then a path, `$var`, a URL or an IPv4 address. */
const SHELL_ARG = String.raw`(?:\s+-{1,2}[a-zA-Z][\w-]{0,15}(?:\s+\d{1,6}\b)?)*\s+(?:/[\w.]|~/|\.{1,2}/|\$|[a-z][\w+.-]*://|\d{1,3}(?:\.\d{1,3}){3}\b)`;
/** Separators that end one shell command and start the next. */
const SEP = String.raw`(?:[;&|\n\r]|\$\(|\x60)`;
/** Commands worth flagging inside `$(…)` or backticks, where nothing else would put them. */
const SUBSTITUTED = `(?:cat|ls|id|whoami|uname|hostname|pwd|wget|curl|nc|ncat|bash|sh|sleep|ping|echo|rm|python[23]?|perl|nslookup|ifconfig|env|ps)`;
const command = (name: string, source: string, flags = ''): Signature => ({
  rule: 'command-injection',
  name,
  pattern: new RegExp(source, flags),
});

const COMMAND: readonly Signature[] = [
  command('separator then command', String.raw`${SEP}\s*(?:sudo\s+)?${COMMANDS}${SHELL_ARG}`),
  // `; uname -a`, `| whoami`, `&& rm -rf`, `; wget`: no argument needed to be unmistakable.
  command(
    'separator then bare command',
    String.raw`${SEP}\s*(?:sudo\s+)?(?:(?:whoami|uname|ifconfig|ipconfig|netstat|nslookup|wget)\b|rm\s+-(?:rf|fr|r|f)\b|ls\s+-[la]{1,3}\b)`,
  ),
  command(
    'netcat to a host',
    String.raw`\b(?:nc|ncat|netcat|telnet)(?:\s+-[a-zA-Z]{1,4})*\s+(?:-e\s|[\w-]+(?:\.[\w-]+)+\s+\d{2,5}\b)`,
  ),
  command('command substitution', String.raw`\$\(\s*${SUBSTITUTED}\b|\$\{IFS\}|\$IFS\b`),
  // Backticks are also markdown code ("`echo` booked"), so they need a shell-shaped argument or
  // a command that is never a clinical word.
  command(
    'backtick command',
    String.raw`\x60\s*(?:${COMMANDS}${SHELL_ARG}[^\x60]{0,256}|(?:whoami|id|uname|hostname|pwd|ifconfig)(?:\s+-\w+)?\s*)\x60`,
  ),
  command('fetch url', String.raw`\b(?:curl|wget)\s+(?:-{1,2}[\w-]+\s+)*(?:https?|ftp|file)://`),
  command(
    'shell binary',
    String.raw`/bin/(?:ba|z|k|c|tc|da)?sh\b|\bcmd(?:\.exe)?\s+/c\s|\bpowershell(?:\.exe)?\s+-(?:enc|e|c|nop|w)\b`,
    'i',
  ),
];

const traversal = (name: string, pattern: RegExp, pathOnly = false): Signature => ({
  rule: 'path-traversal',
  name,
  pattern,
  ...(pathOnly ? { pathOnly } : {}),
});

const TRAVERSAL: readonly Signature[] = [
  // Flags `i` throughout (no letters in most) so the class compiles to one expression.
  // `../`, `..\`, `....//`, `..;/` at the start of a value or after a separator. An ellipsis inside
  // prose ("3f2a.../notes", "unsure.../") has a letter before it and passes.
  traversal('dot-dot segment', /(?:^|[\\/=:'"])\.{2,};?[\\/]/i),
  traversal(
    'sensitive file',
    /\/etc\/(?:passwd|shadow|group|hosts|sudoers)\b|\/proc\/self\/|(?:^|[\\/])windows[\\/](?:win\.ini|system32)\b|\bboot\.ini\b/i,
  ),
  traversal('null byte', /\0/i),
  traversal('dot-dot at end of path', /(?:^|[\\/])\.{2,}$/, true),
];

/**
 * Every signature, in the order classes are reported when one value matches several: SQL, script,
 * command, traversal (so `; cat /etc/passwd` is command injection, not just a sensitive path).
 */
export const SIGNATURES: readonly Signature[] = [...SQL, ...SCRIPT, ...COMMAND, ...TRAVERSAL];

/** Signatures of one rule that share flags and scope, compiled into a single alternation. */
export interface CompiledRule {
  readonly rule: InjectionRule;
  readonly pattern: RegExp;
  readonly pathOnly: boolean;
}

/**
 * One regular expression per run of signatures with the same rule, flags and scope, in
 * SIGNATURES order. One scan of a value per class instead of one per signature cuts the cost
 * (measured on a 200-character note: about 5 µs for 36 separate scans, 1.5 µs for 6 joined ones). Backreferences are renumbered because
 * each signature's groups move by the groups of the signatures before it.
 */
export function compile(signatures: readonly Signature[]): readonly CompiledRule[] {
  const runs: { rule: InjectionRule; flags: string; pathOnly: boolean; sources: string[]; groups: number }[] =
    [];
  for (const s of signatures) {
    const pathOnly = s.pathOnly === true;
    let run = runs.at(-1);
    if (
      run === undefined ||
      run.rule !== s.rule ||
      run.flags !== s.pattern.flags ||
      run.pathOnly !== pathOnly
    ) {
      run = { rule: s.rule, flags: s.pattern.flags, pathOnly, sources: [], groups: 0 };
      runs.push(run);
    }
    const offset = run.groups;
    run.sources.push(
      `(?:${s.pattern.source.replace(/\\\\|\\([1-9])/g, (m, d?: string) => (d === undefined ? m : `\\${Number(d) + offset}`))})`,
    );
    run.groups += countGroups(s.pattern);
  }
  return runs.map((r) => ({
    rule: r.rule,
    pattern: new RegExp(r.sources.join('|'), r.flags),
    pathOnly: r.pathOnly,
  }));
}

function countGroups(pattern: RegExp): number {
  // An alternation with the empty pattern always matches ''; the match array has one slot per group.
  return (new RegExp(`${pattern.source}|`).exec('')?.length ?? 1) - 1;
}

export const COMPILED: readonly CompiledRule[] = compile(SIGNATURES);
