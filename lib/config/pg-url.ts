/**
 * BACKUP_POSTGRES_URL read as libpq reads a connection URI
 * (`postgresql://[user[:password]@][host][:port][,...][/dbname][?param=value&...]`), turned into the
 * PG* environment variables pg_dump and pg_restore take. The password is kept apart: it travels to
 * the host on stdin into a private pgpass file, never in argv or the environment.
 */

/** Query parameters of a URI and the libpq environment variable each becomes. */
const PARAMS: Readonly<Record<string, string>> = {
  host: 'PGHOST',
  hostaddr: 'PGHOSTADDR',
  port: 'PGPORT',
  dbname: 'PGDATABASE',
  user: 'PGUSER',
  connect_timeout: 'PGCONNECT_TIMEOUT',
  options: 'PGOPTIONS',
  application_name: 'PGAPPNAME',
  sslmode: 'PGSSLMODE',
  sslrootcert: 'PGSSLROOTCERT',
  sslcert: 'PGSSLCERT',
  sslkey: 'PGSSLKEY',
  sslcrl: 'PGSSLCRL',
  sslsni: 'PGSSLSNI',
  requirepeer: 'PGREQUIREPEER',
  target_session_attrs: 'PGTARGETSESSIONATTRS',
  gssencmode: 'PGGSSENCMODE',
  channel_binding: 'PGCHANNELBINDING',
  krbsrvname: 'PGKRBSRVNAME',
  service: 'PGSERVICE',
};

/** Every variable a connection may set on the host (the remote script unsets the rest). */
export const PG_VARIABLES: readonly string[] = [...new Set(Object.values(PARAMS))];

export interface PgConnection {
  /** PG* variables for pg_dump and pg_restore; no password among them. */
  readonly env: Readonly<Record<string, string>>;
  readonly password: string | undefined;
  /** `db on host:port`, for messages (no user, no password). */
  readonly where: string;
}

const decode = (part: string, what: string): string => {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new Error(`its ${what} has a bad percent-encoding`);
  }
};

/**
 * Parses a postgres:// URL as libpq would; throws an Error whose message says what is wrong
 * without the password.
 */
export const parsePgUrl = (url: string): PgConnection => {
  const m = /^postgres(?:ql)?:\/\/([^/?#]*)(?:\/([^?#]*))?(?:\?([^#]*))?$/.exec(url);
  if (!m) throw new Error('it is not a postgres://[user[:password]@]host[:port][/db][?param=value] URL');
  const [, authority = '', path = '', query] = m;
  const env: Record<string, string> = {};
  let password: string | undefined;
  const at = authority.lastIndexOf('@');
  const hostspec = at === -1 ? authority : authority.slice(at + 1);
  if (at !== -1) {
    const userinfo = authority.slice(0, at);
    const colon = userinfo.indexOf(':');
    const user = decode(colon === -1 ? userinfo : userinfo.slice(0, colon), 'user');
    if (user) env.PGUSER = user;
    if (colon !== -1) password = decode(userinfo.slice(colon + 1), 'password');
  }
  if (hostspec) {
    const hosts: string[] = [];
    const ports: string[] = [];
    for (const one of hostspec.split(',')) {
      const hp = /^(\[[0-9A-Fa-f:.]+\]|[^:[\]]*)(?::(\d*))?$/.exec(one);
      if (!hp) throw new Error(`its host "${one}" is not host[:port]`);
      hosts.push(decode((hp[1] ?? '').replace(/^\[|\]$/g, ''), 'host'));
      ports.push(hp[2] ?? '');
    }
    if (hosts.some(Boolean)) env.PGHOST = hosts.join(',');
    if (ports.some(Boolean)) env.PGPORT = ports.join(',');
  }
  const db = decode(path, 'database name');
  if (db) env.PGDATABASE = db;
  for (const pair of query ? query.split('&').filter(Boolean) : []) {
    const eq = pair.indexOf('=');
    if (eq === -1) throw new Error(`its parameter "${pair}" has no value`);
    const key = decode(pair.slice(0, eq), 'parameter');
    const value = decode(pair.slice(eq + 1), `parameter ${key}`);
    if (key === 'password') password = value;
    else {
      const variable = PARAMS[key];
      if (!variable) throw new Error(`its parameter "${key}" is not one skiff passes on (${Object.keys(PARAMS).join(', ')})`);
      env[variable] = value;
    }
  }
  for (const [variable, value] of Object.entries(env)) {
    if (/[\n\r\0]/.test(value)) throw new Error(`its ${variable} holds a line break`);
  }
  if (password !== undefined && /[\n\r\0]/.test(password)) throw new Error('its password holds a line break');
  for (const p of (env.PGPORT ?? '').split(',').filter(Boolean)) {
    if (Number(p) < 1 || Number(p) > 65535) throw new Error(`its port ${p} is not 1-65535`);
  }
  const timeout = env.PGCONNECT_TIMEOUT;
  if (timeout !== undefined && !/^\d+$/.test(timeout)) throw new Error('its connect_timeout is not a number of seconds');
  const host = env.PGHOST ?? 'the default socket';
  const where = `${env.PGDATABASE ?? env.PGUSER ?? 'the default database'} on ${host}${host.startsWith('/') ? ' (socket)' : ''}:${env.PGPORT ?? '5432'}`;
  return { env, password, where };
};

/** Seconds pg_dump and pg_restore wait for a connection unless the URL's connect_timeout says otherwise. */
export const PG_CONNECT_TIMEOUT = 10;

/**
 * What the remote script reads on stdin: one `NAME=value` line per variable, then the password as a
 * pgpass field (`:` and `\` escaped, as libpq reads them).
 */
export const pgStdin = (c: PgConnection): string =>
  [
    ...Object.entries(c.env).map(([k, v]) => `${k}=${v}`),
    ...(c.password === undefined ? [] : [`PASSWORD=${c.password.replace(/[\\:]/g, (ch) => `\\${ch}`)}`]),
  ]
    .map((line) => `${line}\n`)
    .join('');
