// The Schedules page: its next times, rendered in UTC by the server, in the browser's own.
import { localTimes } from "./elapsed.js";

localTimes();
