import type { Context } from 'hono';
import type { Config } from '../config';
import { AppError } from '../domain/errors';
import { hasScope, mayUseNamespace, type Principal } from '../security/principal';
import type { DocumentRecord } from '../storage/documents';
import type { AppEnv } from './app-env';

/**
 * The namespace a request works in: the one it names, or the principal's default. A key
 * confined to namespaces gets 403 for any other, which says nothing about what is there.
 */
export function namespaceFor(principal: Principal, requested: string | undefined, config: Config): string {
  const namespace = requested ?? defaultNamespace(principal, config);
  if (!mayUseNamespace(principal, namespace)) {
    throw new AppError('forbidden', `This API key may not use namespace "${namespace}".`);
  }
  return namespace;
}

/** DEFAULT_NAMESPACE, or for a key confined elsewhere its only namespace. */
function defaultNamespace(principal: Principal, config: Config): string {
  const allowed = principal.namespaces;
  if (allowed === null || allowed.includes(config.DEFAULT_NAMESPACE)) return config.DEFAULT_NAMESPACE;
  if (allowed.length === 1) return allowed[0] as string;
  throw new AppError('bad_request', `This API key works in several namespaces (${allowed.join(', ')}): name one with "namespace".`);
}

/**
 * Namespaces a listing covers: the one named, all of them for an admin who names none
 * (listing across tenants is admin-only), else the principal's default.
 */
export function listingNamespace(principal: Principal, requested: string | undefined, config: Config): string | undefined {
  if (requested === undefined && principal.namespaces === null && hasScope(principal, 'admin')) return undefined;
  return namespaceFor(principal, requested, config);
}

/**
 * A document by id, if the principal may see it. One in another namespace answers exactly
 * like an unknown id, so ids cannot be probed across tenants.
 */
export async function visibleDocument(c: Context<AppEnv>, id: string): Promise<DocumentRecord> {
  const document = await c.var.services.documents.get(id);
  if (!document || !mayUseNamespace(c.var.principal, document.namespace)) {
    throw new AppError('not_found', 'No document with this id.');
  }
  return document;
}

/** Throws 403 unless the principal has `admin` (for work across every namespace). */
export function requireAdmin(principal: Principal, what: string): void {
  if (!hasScope(principal, 'admin')) throw new AppError('forbidden', `${what} needs an API key with the "admin" scope.`);
}
