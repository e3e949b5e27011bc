import { createPrivateKey, X509Certificate } from 'node:crypto';
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
  if (existsSync(keyFile) && existsSync(certFile)) {
    return loadTls(certFile, keyFile, `remove ${certFile} and ${keyFile}: Kith makes a new self-signed pair`);
  }
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

/**
 * The user's own certificate (tls.cert / tls.key in the configuration), or the self-signed pair
 * in tls/. Both are checked here, so that a damaged file is named instead of surfacing later as
 * an OpenSSL error from the SMTP or IMAP server.
 */
export function loadTls(
  certFile: string,
  keyFile: string,
  hint = 'check tls.cert and tls.key (KITH_TLS_CERT, KITH_TLS_KEY) in the configuration',
): TlsMaterial {
  const read = (file: string): string => {
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      throw new KithError('ERR_TLS_FILES', `cannot read ${file}: ${(err as Error).message}`, hint);
    }
  };
  const cert = read(certFile);
  const key = read(keyFile);
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(cert);
  } catch (err) {
    throw new KithError(
      'ERR_TLS_FILES',
      `${certFile} is not a PEM certificate: ${(err as Error).message}`,
      hint,
    );
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new KithError(
      'ERR_TLS_FILES',
      `${keyFile} is not a PEM private key: ${(err as Error).message}`,
      hint,
    );
  }
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new KithError('ERR_TLS_FILES', `${keyFile} is not the key of the certificate in ${certFile}`, hint);
  }
  return { cert, key };
}
