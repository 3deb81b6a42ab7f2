import dgram from 'node:dgram';
import net from 'node:net';
import os from 'node:os';
import { CustosError } from '../errors.ts';
import { fileMirror, type SealOptions } from './sealer.ts';

/**
 * Mirrors each sealed audit entry to a syslog collector as an RFC 5424 message whose MSG is the
 * entry as JSON (the same line the file mirror writes): facility 13 (log audit), severity 6
 * (informational). `udp://host:port` sends one datagram per entry (RFC 5426); `tcp://host:port`
 * keeps one connection and frames messages by octet counting (RFC 6587). Entries hold ids and
 * pseudonyms only, so nothing here is health data; the sealer's checkpoints remain the proof.
 */
const PRI = 13 * 8 + 6;

export function syslogMessage(entry: Record<string, unknown>, checkpoint: number, at: Date): string {
  const host =
    os
      .hostname()
      .replace(/[^\x21-\x7e]/g, '')
      .slice(0, 255) || '-';
  return `<${PRI}>1 ${at.toISOString()} ${host} custos ${process.pid} audit - ${JSON.stringify({ ...entry, checkpoint })}`;
}

export function parseSyslogTarget(url: string): { protocol: 'udp' | 'tcp'; host: string; port: number } {
  const m = /^(udp|tcp):\/\/([^:/]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$/.exec(url);
  const port = Number(m?.[3]);
  if (!m || port < 1 || port > 65535) {
    throw new CustosError(
      'CUSTOS_ERR_CONFIG',
      'CUSTOS_AUDIT_SYSLOG must look like udp://host:514 or tcp://host:601',
    );
  }
  return { protocol: m[1] as 'udp' | 'tcp', host: (m[2] ?? '').replace(/^\[|\]$/g, ''), port };
}

export interface SyslogMirror {
  readonly mirror: NonNullable<SealOptions['mirror']>;
  close(): Promise<void>;
}

export function syslogMirror(url: string): SyslogMirror {
  const target = parseSyslogTarget(url);
  if (target.protocol === 'udp') {
    const socket = dgram.createSocket(net.isIPv6(target.host) ? 'udp6' : 'udp4');
    socket.unref();
    return {
      mirror: async (entries, checkpoint) => {
        for (const e of entries) {
          const msg = Buffer.from(syslogMessage(e as Record<string, unknown>, checkpoint.number, new Date()));
          await new Promise<void>((resolve, reject) =>
            socket.send(msg, target.port, target.host, (err) => (err ? reject(err) : resolve())),
          );
        }
      },
      close: () => new Promise((resolve) => socket.close(() => resolve())),
    };
  }
  let conn: net.Socket | undefined;
  const connect = () =>
    new Promise<net.Socket>((resolve, reject) => {
      const s = net.createConnection({ host: target.host, port: target.port }, () => resolve(s));
      s.once('error', reject);
      s.on('close', () => {
        if (conn === s) {
          conn = undefined;
        }
      });
      s.unref();
    });
  return {
    mirror: async (entries, checkpoint) => {
      if (entries.length === 0) {
        return;
      }
      conn ??= await connect();
      const framed = entries.map((e) => {
        const msg = Buffer.from(syslogMessage(e as Record<string, unknown>, checkpoint.number, new Date()));
        return Buffer.concat([Buffer.from(`${msg.length} `), msg]);
      });
      const s = conn;
      await new Promise<void>((resolve, reject) =>
        s.write(Buffer.concat(framed), (err) => (err ? reject(err) : resolve())),
      );
    },
    close: async () => {
      conn?.end();
      conn = undefined;
    },
  };
}

/** The mirrors the configuration asks for (file, syslog, both or none), as one. */
export function configuredMirror(config: {
  readonly auditMirror: string | undefined;
  readonly auditSyslog: string | undefined;
}): { mirror?: NonNullable<SealOptions['mirror']>; close: () => Promise<void> } {
  const parts: NonNullable<SealOptions['mirror']>[] = [];
  if (config.auditMirror) {
    parts.push(fileMirror(config.auditMirror));
  }
  const sys = config.auditSyslog ? syslogMirror(config.auditSyslog) : undefined;
  if (sys) {
    parts.push(sys.mirror);
  }
  if (parts.length === 0) {
    return { close: async () => undefined };
  }
  return {
    mirror: async (entries, checkpoint) => {
      for (const m of parts) {
        await m(entries, checkpoint);
      }
    },
    close: async () => {
      await sys?.close();
    },
  };
}
