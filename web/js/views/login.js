// #/login: the sign-in form. One <form> with a labelled email and password field; Enter
// submits; a wrong password shows a role=alert message and keeps the form (and the email).
import { h } from '../dom.js';
import { form } from '../ui.js';
import { ApiError } from '../api.js';

export async function render(root, ctx) {
  ctx.setTitle('Sign in');
  const f = form({
    id: 'login-form',
    submit: 'Sign in',
    busy: 'Signing in…',
    fields: [
      { name: 'email', label: 'Email', type: 'email', required: true, autocomplete: 'username', maxlength: 254 },
      { name: 'password', label: 'Password', type: 'password', required: true, autocomplete: 'current-password', maxlength: 1024 },
    ],
    onSubmit: async (v) => {
      try {
        await ctx.api.login(v.email.trim(), v.password);
      } catch (err) {
        const pw = f.control('password');
        pw.value = '';
        if (err instanceof ApiError && err.code === 'invalid_credentials') {
          throw new Error('Wrong email or password. Check both and try again.');
        }
        if (err instanceof ApiError && err.status === 429) {
          throw new Error(`Too many failed sign-ins: ${err.message} Wait a little and try again.`);
        }
        throw err;
      }
      await ctx.signedIn(ctx.returnTo);
    },
  });
  root.append(h('div', { class: 'login' },
    h('div', { class: 'card' },
      h('h1', null, 'Sign in to Tollgate'),
      f)));
  f.control('email').focus();
}
