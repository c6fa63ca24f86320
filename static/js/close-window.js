// The sign-in window reports success in its page; the server tells the waiting page over
// the websocket. This window closes itself (browsers allow it for windows a script opened).
setTimeout(() => window.close(), 1200);
