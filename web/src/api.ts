// The bnserve.v1 clients: the Connect protocol (JSON) on the page's own
// origin, with the bearer token from localStorage when one is set.
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { InferenceService } from "@gen/bnserve/v1/inference_service_pb";
import { ModelRegistry } from "@gen/bnserve/v1/model_registry_pb";
import { TrainingService } from "@gen/bnserve/v1/training_service_pb";

const TOKEN_KEY = "bnserve.token";

export function getToken(): string {
  return localStorage.getItem(TOKEN_KEY) ?? "";
}

export function setToken(token: string): void {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

// Adds "Authorization: Bearer <token>" to every call, streams included.
const bearer: Interceptor = (next) => async (req) => {
  const token = getToken();
  if (token) req.header.set("Authorization", `Bearer ${token}`);
  return await next(req);
};

const transport = createConnectTransport({
  baseUrl: location.origin,
  interceptors: [bearer],
});

export const training = createClient(TrainingService, transport);
export const registry = createClient(ModelRegistry, transport);
export const inference = createClient(InferenceService, transport);

// True when the server wants a (different) token.
export function isAuthError(err: unknown): boolean {
  const e = ConnectError.from(err);
  return e.code === Code.Unauthenticated || e.code === Code.PermissionDenied;
}

// True for an error caused by leaving the page (an aborted call or stream).
export function isAbort(err: unknown): boolean {
  return ConnectError.from(err).code === Code.Canceled;
}

// "not_found: no model named x" style text for the page.
export function describeError(err: unknown): string {
  const e = ConnectError.from(err);
  return `${Code[e.code] ?? e.code}: ${e.rawMessage}`;
}
