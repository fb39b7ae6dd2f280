// Repository name and tag grammars of the distribution spec.
import { err } from './errors';

const COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
export const MAX_NAME_LENGTH = 255;

export function isValidName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_NAME_LENGTH && NAME.test(name);
}

export function checkName(name: string): void {
  if (!isValidName(name)) throw err('NAME_INVALID', 'invalid repository name', { name });
}

export function isValidTag(tag: string): boolean {
  return TAG.test(tag);
}

export function checkTag(tag: string): void {
  if (!isValidTag(tag)) throw err('TAG_INVALID', 'invalid tag', { tag });
}
