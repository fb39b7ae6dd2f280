// Sign in with a user's password or a robot account's secret; the server sets
// the session cookie. Afterwards, back to where the user was going.
import { useState } from 'preact/hooks';
import type { ApiError } from '../api';
import { PageTitle } from '../components';
import { navigate, useLocation } from '../router';
import { login, useSession } from '../session';

/** Only a path of this UI: never another origin (`//host`) or a script URL. */
const safeNext = (next: string | null) => (next && /^\/(?!\/)/.test(next) && !next.startsWith('/login') ? next : '/');

export function LoginPage() {
  const { search } = useLocation();
  const { session } = useSession();
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      await login(username, password);
      navigate(safeNext(search.get('next')), { replace: true });
    } catch (err) {
      const a = err as ApiError;
      setError(a.status === 401 ? 'Wrong user name or password.' : a.message);
      setBusy(false);
    }
  };
  if (session?.auth === 'none') {
    return (
      <section class="login">
        <PageTitle title="Sign in" />
        <p>This registry has no auth configured: everyone may see and do everything.</p>
      </section>
    );
  }
  return (
    <section class="login">
      <PageTitle title="Sign in" />
      {search.get('expired') && (
        <p class="notice" role="status">
          Your session has ended. Sign in again to continue.
        </p>
      )}
      <form onSubmit={submit}>
        <label class="field">
          <span class="label">User name</span>
          <input name="username" autoComplete="username" required value={username} onInput={(e) => setUsername(e.currentTarget.value)} autoCapitalize="none" spellcheck={false} />
        </label>
        <label class="field">
          <span class="label">Password or robot secret</span>
          <input name="password" type="password" autoComplete="current-password" required value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
        </label>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
      <p class="muted small">The same accounts as <code>docker login</code>. Your session lasts a few minutes past your last action.</p>
    </section>
  );
}
