/** The sign-in page: one form, two actions (sign in, create an account). */
import { explain, fill, h } from './dom.js'

export type Submit = (email: string, password: string, create: boolean) => Promise<void>

export function signIn (root: HTMLElement, submit: Submit): void {
  const email = h('input', { type: 'email', name: 'email', required: true, autocomplete: 'username', 'aria-label': 'Email' })
  const password = h('input', { type: 'password', name: 'password', required: true, minLength: 8, autocomplete: 'current-password', 'aria-label': 'Password' })
  const error = h('p.error', { role: 'alert' })
  let create = false
  const form = h('form.signin', {
    onsubmit: (e: Event) => {
      e.preventDefault()
      fill(error)
      form.classList.add('busy')
      submit(email.value.trim(), password.value, create)
        .catch((err: unknown) => { fill(error, explain(err)) })
        .finally(() => form.classList.remove('busy'))
    }
  },
  h('h1', {}, 'syncd notes'),
  h('p.muted', {}, 'Your notes, on every device, online or not.'),
  h('label', {}, 'Email', email),
  h('label', {}, 'Password', password),
  h('div.actions',
    {},
    h('button.primary', { type: 'submit', onclick: () => { create = false } }, 'Sign in'),
    h('button', { type: 'submit', onclick: () => { create = true } }, 'Create account')),
  error)
  fill(root, h('main.center', {}, form))
  email.focus()
}
