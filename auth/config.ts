// Typed shapes of the auth-related config sections. `auth` has the keys of CNCF
// distribution's config.yml; `tokenserver` is berth's own token service.

/** distribution's `auth.token`: how the registry verifies bearer tokens. */
export interface TokenAuthConfig {
  /** URL of the token endpoint, sent to clients in the challenge. */
  realm: string;
  /** This registry's name: the `service` clients ask for and the tokens' `aud`. */
  service: string;
  /** Expected `iss` of tokens. */
  issuer: string;
  /** PEM bundle of trusted certificates: `x5c` chains must end at one; their keys are trusted by kid too. */
  rootcertbundle?: string;
  /** JWKS file (`{"keys": [...]}`) of trusted public keys, looked up by `kid`. */
  jwks?: string;
  /** Accepted JWS algorithms; asymmetric only. Default: RS/PS/ES 256..512. */
  signingalgorithms?: string[];
  /** Build the realm from the request's Host header (keeping the configured realm's path). */
  autoredirect?: boolean;
}

/** distribution's `auth.htpasswd`: Basic auth on the registry itself (bcrypt entries). */
export interface HtpasswdAuthConfig {
  realm: string;
  path: string;
}

export interface AuthConfig {
  token?: TokenAuthConfig;
  htpasswd?: HtpasswdAuthConfig;
}

/** berth's token service (`tokenserver:`), in-process with `berth serve` or alone with `berth token-server`. */
export interface TokenServerConfig {
  /** Listen address for `berth token-server` (host:port). Ignored in-process. */
  addr?: string;
  /** URL path of the token endpoint (default `/token`). */
  path?: string;
  /** `iss` of the tokens it signs. */
  issuer: string;
  /** PEM private key (RSA or EC P-256/P-384) the tokens are signed with. */
  key: string;
  /** Optional PEM certificate chain for `key` (leaf first), sent as `x5c`. */
  certificate?: string;
  /** Access token lifetime in milliseconds (config: a duration, default 5m, at least 60s). */
  expiration?: number;
  /** Refresh token lifetime in milliseconds (config: a duration, default 720h). */
  refreshexpiration?: number;
  /** Users file (YAML) managed by `berth user add|passwd|remove`. */
  users: string;
  /** Access policy file (YAML), reloaded on change. */
  policy: string;
  /** Service names (registries) tokens may be issued for; each is a token audience. */
  services: string[];
  /** Realm of the Basic challenge on bad credentials. */
  realm?: string;
}
