// A real OpenID Connect provider for the tests: panva's certified oidc-provider, configured
// from the JSON file named by argv[2] (written by tests/peers/oidc.py) and run on its port.
// Sign-in is a small form of our own (type a user's name); consent is given for the one
// first-party client. POST /_test/remove?account=NAME takes an account away at the provider.
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const require = createRequire(`${config.module_dir}/`);
const { default: Provider } = await import(require.resolve('oidc-provider'));

const accounts = new Map(Object.entries(config.accounts)); // name → groups
const RESOURCE = config.resource; // the codec endpoint's resource (JWT access tokens)

const page = (title, body) => `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>${title}</title></head>
<body><main><h1>${title}</h1>${body}</main></body></html>`;

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const provider = new Provider(config.issuer, {
  clients: [{
    client_id: config.client_id,
    client_secret: config.client_secret,
    redirect_uris: config.redirect_uris,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  pkce: { required: () => true },
  jwks: { keys: config.keys }, // the first signs; the others are still published
  cookies: { keys: [config.cookie_key] },
  claims: {
    openid: ['sub'],
    profile: ['preferred_username'],
    email: ['email'],
    groups: ['groups'],
  },
  conformIdTokenClaims: false, // the scopes' claims in the ID token (Reclaim reads them there)
  findAccount: async (ctx, id) => {
    if (!accounts.has(id)) return undefined;
    return {
      accountId: id,
      claims: async () => ({
        sub: id, preferred_username: id, email: `${id}@example.org`, groups: accounts.get(id),
      }),
    };
  },
  extraTokenClaims: async (ctx, token) => (
    token.accountId && accounts.has(token.accountId)
      ? { groups: accounts.get(token.accountId), preferred_username: token.accountId }
      : undefined
  ),
  features: {
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => {
        if (resource !== RESOURCE) throw new Error('unknown resource');
        // Reclaim's codec endpoint wants a JWT whose aud names Reclaim's client id.
        return { scope: 'codec', audience: config.client_id, accessTokenFormat: 'jwt' };
      },
    },
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  renderError: async (ctx, out) => {
    ctx.type = 'html';
    ctx.body = page('Sign-in failed', `<p>${escape(out.error)}: ${escape(out.error_description)}</p>`);
  },
});

provider.on('server_error', (ctx, err) => console.error('server_error', err));

async function form(req) {
  let raw = '';
  for await (const chunk of req) raw += chunk;
  return new URLSearchParams(raw);
}

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  if (req.method === 'GET') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(page('Sign in to the test organisation', `
<form method="post" action="/interaction/${escape(details.uid)}">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username">
<button type="submit">Sign in</button></form>`));
    return;
  }
  const name = (await form(req)).get('username') || '';
  if (!accounts.has(name)) {
    res.writeHead(401, { 'content-type': 'text/html; charset=utf-8' });
    res.end(page('No such account', '<p>This organisation has no account by that name.</p>'));
    return;
  }
  const grant = new provider.Grant({ accountId: name, clientId: details.params.client_id });
  grant.addOIDCScope(details.params.scope);
  grant.addResourceScope(details.params.resource || RESOURCE, 'codec');
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, {
    login: { accountId: name }, consent: { grantId },
  }, { mergeWithLastSubmission: false });
}

const callback = provider.callback();
http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, config.issuer);
    if (url.pathname.startsWith('/interaction/')) return await interaction(req, res);
    if (url.pathname === '/_test/remove' && req.method === 'POST') {
      accounts.delete(url.searchParams.get('account'));
      res.writeHead(204).end();
      return;
    }
    return callback(req, res);
  } catch (err) {
    console.error(err);
    if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
    res.end(String(err));
  }
}).listen(config.port, '127.0.0.1', () => console.log(`listening ${config.issuer}`));
