// What the operator can do after an init the node failed or refused: the node names it, the CLI prints its hint
// from this value, never from the node's wording (which may change).
export const INIT_REMEDIES = ['reboot', 'retry-later'] as const;

export type InitRemedy = (typeof INIT_REMEDIES)[number];

/** The trailing-metadata key a refusal (a gRPC status) carries its remedy in; InitFailure has a `remedy` field. */
export const INIT_REMEDY_METADATA = 'sextant-init-remedy';

/** The remedy a node sent, or undefined for none or one this CLI does not know (an older or newer node). */
export function parseInitRemedy(value: unknown): InitRemedy | undefined {
  return (INIT_REMEDIES as readonly unknown[]).includes(value) ? (value as InitRemedy) : undefined;
}
