/**
 * The call link checked before anything else (`GET /api/v1/call/link`): who it is for, whom
 * they meet and when — or why it cannot work, so the page says so before asking for the
 * camera. A network failure does not stop the call: the check is a courtesy, the signaling
 * server decides.
 */

export interface LinkConsultation {
  id: string;
  status: string;
  startsAt: string;
  endsAt: string;
  timeZone: string;
  opensAt: string;
  closesAt: string;
  doctorName: string;
  doctorSpecialty: string;
  patientName: string;
}

export interface CallLink {
  participantId: string;
  role: string;
  name: string;
  expiresAt: string;
  consultation: LinkConsultation | null;
}

export type LinkCheck =
  | { kind: 'ok'; link: CallLink }
  /** The server refused the link: its problem `code` (`link_expired`, `consultation_cancelled`…). */
  | { kind: 'refused'; code: string }
  /** Could not ask (offline, an old server): go on and let the call say. */
  | { kind: 'unknown' };

export async function checkLink(token: string): Promise<LinkCheck> {
  let res: Response;
  try {
    res = await fetch('/api/v1/call/link', { headers: { authorization: `Bearer ${token}` }, cache: 'no-store' });
  } catch {
    return { kind: 'unknown' };
  }
  try {
    const body = (await res.json()) as unknown;
    if (res.ok) return { kind: 'ok', link: body as CallLink };
    const code = typeof body === 'object' && body !== null && 'code' in body ? String((body as { code: unknown }).code) : '';
    if (res.status === 401 || res.status === 403 || res.status === 404 || res.status === 409) {
      return { kind: 'refused', code: res.status === 403 && code === 'forbidden' ? 'not_a_party' : res.status === 404 ? 'not_found' : code };
    }
  } catch {
    // Not JSON: a proxy's page.
  }
  return { kind: 'unknown' };
}
