// The Schedules page: its next times, rendered in UTC by the server, in the browser's own;
// its filter sends only the fields set.
import { localTimes } from "./elapsed.js";
import { sendOnlySet } from "./filter-form.js";

localTimes();
sendOnlySet(document.getElementById("schedule-filters"));
