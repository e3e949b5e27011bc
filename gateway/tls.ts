import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generate } from 'selfsigned';
import { KithError } from '../common/errors.ts';

/** PEM key and certificate for STARTTLS / implicit TLS on SMTP and IMAP. */
export interface TlsMaterial {
  key: string;
  cert: string;
}

/**
 * A self-signed certificate for localhost/127.0.0.1, made once at init and kept in
 * <dataDir>/tls. Mail clients ask the user to accept it once (Thunderbird: "confirm exception").
 */
export async function ensureSelfSignedCertificate(tlsDir: string): Promise<TlsMaterial> {
  const keyFile = join(tlsDir, 'key.pem');
  const certFile = join(tlsDir, 'cert.pem');
  if (existsSync(keyFile) && existsSync(certFile)) return loadTls(certFile, keyFile);
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keySize: 2048,
    notAfterDate: new Date(Date.now() + 3650 * 86_400_000),
    algorithm: 'sha256',
    extensions: [
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
        ],
      },
    ],
  });
  writeFileSync(keyFile, pems.private, { mode: 0o600 });
  writeFileSync(certFile, pems.cert, { mode: 0o644 });
  return { key: pems.private, cert: pems.cert };
}

/** The user's own certificate (tls.cert / tls.key in the configuration). */
export function loadTls(certFile: string, keyFile: string): TlsMaterial {
  try {
    return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
  } catch (err) {
    throw new KithError(
      'ERR_TLS_FILES',
      `cannot read the TLS certificate or key: ${(err as Error).message}`,
      'check tls.cert and tls.key in the configuration',
    );
  }
}
