/**
 * A yes/no question in a modal `<dialog>`, shared by the call page and the portal. Escape and
 * the «no» button answer no (the safe answer); focus starts on «no» and goes back to where it
 * was. Without `showModal` (an old browser) the browser's own `confirm` asks `fallback`.
 */
export function ask(dialog: HTMLDialogElement, yes: HTMLButtonElement, no: HTMLButtonElement, fallback: string): Promise<boolean> {
  if (typeof dialog.showModal !== 'function') return Promise.resolve(window.confirm(fallback));
  const back = document.activeElement instanceof HTMLElement ? document.activeElement : null;
  return new Promise((resolve) => {
    const done = (answer: boolean): void => {
      yes.removeEventListener('click', onYes);
      no.removeEventListener('click', onNo);
      dialog.removeEventListener('cancel', onCancel);
      if (dialog.open) dialog.close();
      if (back?.isConnected === true) back.focus();
      resolve(answer);
    };
    const onYes = (): void => done(true);
    const onNo = (): void => done(false);
    const onCancel = (e: Event): void => {
      e.preventDefault();
      done(false);
    };
    yes.addEventListener('click', onYes);
    no.addEventListener('click', onNo);
    dialog.addEventListener('cancel', onCancel);
    dialog.showModal();
    no.focus();
  });
}
