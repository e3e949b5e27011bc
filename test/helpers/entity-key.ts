// A fresh entity key (OpenPGP, Curve25519) for tests that seal, sign and wrap without a node.
import * as openpgp from 'openpgp';
import { asFingerprint, type Fingerprint } from '../../common/ids.ts';

export async function testEntityKey(
  email: string,
  name?: string,
): Promise<{ key: openpgp.PrivateKey; fpr: Fingerprint }> {
  const { privateKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'curve25519Legacy',
    userIDs: [name ? { name, email } : { email }],
    format: 'object',
  });
  return { key: privateKey, fpr: asFingerprint(privateKey.getFingerprint()) };
}
