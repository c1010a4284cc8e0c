import type { Scope } from './api-key';

/** Who is asking, once their key (or its absence, with auth off) has been checked. */
export interface Principal {
  /** The key's id; `admin` for ADMIN_API_KEY; null when anonymous (auth off, or open operations routes). */
  keyId: string | null;
  scopes: readonly Scope[];
  /** The namespaces it may touch; null for all. */
  namespaces: readonly string[] | null;
}

/** With auth off, everyone may do everything, as before keys existed. */
export const ANONYMOUS: Principal = { keyId: null, scopes: ['read', 'write', 'admin'], namespaces: null };
/** The holder of ADMIN_API_KEY. */
export const ADMIN: Principal = { keyId: 'admin', scopes: ['read', 'write', 'admin'], namespaces: null };
/** A request without a key to a route that is configured open (OPERATIONS_PUBLIC). */
export const PUBLIC: Principal = { keyId: null, scopes: [], namespaces: null };

/** `admin` includes `write` and `read`; `write` does not include `read`. */
export function hasScope(principal: Pick<Principal, 'scopes'>, scope: Scope): boolean {
  return principal.scopes.includes(scope) || principal.scopes.includes('admin');
}

export function mayUseNamespace(principal: Principal, namespace: string): boolean {
  return principal.namespaces === null || principal.namespaces.includes(namespace);
}
