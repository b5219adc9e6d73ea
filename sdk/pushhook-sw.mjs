// pushhook's service-worker SDK for module workers (`navigator.serviceWorker.register(url,
// {type: 'module'})`): the same code as pushhook-sw.js, imported for its side effect.
//
//   import { Pushhook } from './pushhook-sw.mjs';
//   Pushhook.init({endpoint: 'https://pushhook.example.com/v1/events', key: 'pk_…'});
import './pushhook-sw.js';

export const Pushhook = self.Pushhook;
export default Pushhook;
