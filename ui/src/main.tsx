// The UI's entry: layout (skip link, header, navigation, who is signed in)
// and the page for the current route.
import { render } from 'preact';
import './style.css';
import { ImagePage } from './pages/image';
import { LoginPage } from './pages/login';
import { RepositoriesPage } from './pages/repositories';
import { RepositoryPage } from './pages/repository';
import { StoragePage } from './pages/storage';
import { PageTitle } from './components';
import { parseRoute, startRouter, useLocation } from './router';
import { loginHref, logout, startSession, useSession } from './session';

function Header({ current }: { current: string }) {
  const { session } = useSession();
  const link = (href: string, label: string, page: string) => (
    <a href={href} aria-current={current === page ? 'page' : undefined}>
      {label}
    </a>
  );
  return (
    <header class="top">
      <a class="brand" href="/" aria-label="berth: repositories">
        <svg viewBox="0 0 32 32" aria-hidden="true" class="logo">
          <path d="M6 19h20l-3 6H9z" />
          <path class="stack" d="M9 17V9h5v8zm6 0V6h5v11zm6 0v-6h4v6z" />
        </svg>
        berth
      </a>
      <nav aria-label="Main">
        {link('/', 'Repositories', 'repositories')}
        {link('/storage', 'Storage', 'storage')}
      </nav>
      <div class="who">
        {session?.user ? (
          <>
            <span class="user" title="Signed in">
              {session.user}
            </span>
            <button type="button" class="link" onClick={() => void logout()}>
              Sign out
            </button>
          </>
        ) : session && session.auth !== 'none' && current !== 'login' ? (
          <a href={loginHref()}>Sign in</a>
        ) : null}
      </div>
    </header>
  );
}

function App() {
  const { pathname } = useLocation();
  const { session, epoch } = useSession();
  const route = parseRoute(pathname);
  let page;
  // Pages wait for the session: what they show depends on who is asking.
  if (!session) page = null;
  else if (route.page === 'repositories') page = <RepositoriesPage key={epoch} />;
  else if (route.page === 'repository') page = <RepositoryPage key={`${epoch}:${route.name}`} name={route.name} />;
  else if (route.page === 'image') page = <ImagePage key={`${epoch}:${route.name}@${route.reference}`} name={route.name} reference={route.reference} />;
  else if (route.page === 'storage') page = <StoragePage key={epoch} />;
  else if (route.page === 'login') page = <LoginPage />;
  else page = <PageTitle title="Not found">This page does not exist.</PageTitle>;
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <Header current={route.page} />
      <main id="main">{page}</main>
    </>
  );
}

startRouter();
startSession();
render(<App />, document.getElementById('app')!);
