// #/prices: what each provider charges per million tokens of a model. Everyone reads them;
// platform admins set (PUT replaces the whole price) and delete them.
import {
  el, append, clear, heading, section, field, form, alertBox, statusBox, dangerButton, disclosure,
  isPlatform, setTitle, pagedTable, time, errorText, loadAll, num, put, withQuery, DASH,
} from './_kit.js';

function usdCheck(v) {
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 && n <= 1000000 ? null : 'A number of USD from 0 to 1000000.';
}

function perM(v) {
  if (v === null || v === undefined) return DASH;
  return `$${v}`;
}

export async function render(root, ctx) {
  setTitle(ctx, 'Prices');
  const platform = isPlatform(ctx);
  const alert = alertBox();
  const status = statusBox();
  const listArea = el('div');
  const head = heading('Prices');
  clear(root);
  let providers = [];
  if (platform) {
    try { providers = await loadAll(ctx.api, '/api/v1/providers'); } catch (err) { alert.show(`Could not load the providers: ${errorText(err)}`); }
  }

  function priceForm(p, close) {
    const fs = [
      field({ name: 'provider_id', label: 'Provider', type: 'select', options: providers.map((x) => ({ value: x.id, label: x.name })), value: p ? p.provider_id : undefined }),
      field({ name: 'model', label: 'Provider model', required: true, value: p ? p.model : '', maxlength: 256 }),
      field({ name: 'input_per_mtok', label: 'Input, USD per million tokens', type: 'number', step: 'any', min: 0, required: true, value: p ? p.input_per_mtok : '', check: usdCheck }),
      field({ name: 'cached_input_per_mtok', label: 'Cached input, USD per million tokens (optional)', type: 'number', step: 'any', min: 0, value: p ? p.cached_input_per_mtok ?? '' : '', check: usdCheck }),
      field({ name: 'output_per_mtok', label: 'Output, USD per million tokens', type: 'number', step: 'any', min: 0, required: true, value: p ? p.output_per_mtok : '', check: usdCheck }),
    ];
    if (p) { fs[0].input.disabled = true; fs[1].input.readOnly = true; }
    return form({
      fields: fs, submit: 'Save price', cancel: close, label: p ? `Edit the price of ${p.provider}/${p.model}` : 'Set a price',
      onSubmit: async (v) => {
        const body = {
          provider_id: p ? p.provider_id : v.provider_id, model: v.model.trim(),
          input_per_mtok: num(v.input_per_mtok), output_per_mtok: num(v.output_per_mtok),
        };
        if (num(v.cached_input_per_mtok) !== null) body.cached_input_per_mtok = num(v.cached_input_per_mtok);
        await put(ctx.api, '/api/v1/prices', body);
        if (!p) close();
        await refresh(`The price of ${body.model} was saved.`);
      },
    }).el;
  }

  async function refresh(message) {
    clear(listArea);
    const columns = [
      { label: 'Provider', cell: (p) => el('span', { class: 'mono cell-text' }, p.provider) },
      { label: 'Model', cell: (p) => el('span', { class: 'mono cell-text' }, p.model) },
      { label: 'Input / Mtok', cell: (p) => perM(p.input_per_mtok) },
      { label: 'Cached input / Mtok', cell: (p) => perM(p.cached_input_per_mtok) },
      { label: 'Output / Mtok', cell: (p) => perM(p.output_per_mtok) },
      { label: 'Updated', cell: (p) => time(p.updated_at) },
    ];
    if (platform) {
      columns.push({
        label: 'Actions',
        cell: (p) => {
          const edit = disclosure('Edit', (close) => priceForm(p, close), { buttonClass: 'btn btn-small' });
          edit.button.setAttribute('aria-label', `Edit the price of ${p.provider}/${p.model}`);
          return el('div', { class: 'row-actions' }, edit.button, dangerButton('Delete', {
            label: `Delete the price of ${p.provider}/${p.model}`,
            message: `Delete the price of ${p.provider}/${p.model}? Requests to it then cost nothing, so budgets no longer count them.`,
            confirmLabel: 'Delete price',
            alert,
            act: async () => {
              await ctx.api.del(withQuery('/api/v1/prices', { provider_id: p.provider_id, model: p.model }));
              await refresh(`The price of ${p.model} was deleted.`);
            },
          }), edit.area);
        },
      });
    }
    try {
      listArea.append(await pagedTable({
        columns,
        empty: platform
          ? (providers.length ? 'No prices yet — set one above (a model without a price costs nothing).' : 'No prices yet — add a provider first, then its prices.')
          : 'No prices yet — a platform admin sets them.',
        load: (cursor) => ctx.api.get('/api/v1/prices', cursor ? { cursor } : {}),
      }));
    } catch (err) {
      alert.show(`Could not load the prices: ${errorText(err)}`);
    }
    if (message) status.show(message);
  }

  append(root, [head, alert.el, status.el]);
  if (platform && providers.length) {
    const create = disclosure('Set a price', (close) => priceForm(null, close));
    head.actions.append(create.button);
    root.append(create.area);
  }
  root.append(section('All prices', listArea));
  await refresh();
}
