import { KithError } from '../../common/errors.ts';

/** The stable code of the KithError a promise rejects with (tests assert codes, not texts). */
export async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof KithError) return err.code;
    throw err;
  }
  throw new Error('expected a KithError');
}
