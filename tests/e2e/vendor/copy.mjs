// Copies axe-core's built file and its licenses from node_modules into this folder.
import { copyFileSync } from "node:fs";

const from = "node_modules/axe-core/";
copyFileSync(from + "axe.min.js", "axe.min.js");
copyFileSync(from + "LICENSE", "axe.LICENSE.txt");
copyFileSync(from + "LICENSE-3RD-PARTY.txt", "axe.LICENSE-3RD-PARTY.txt");
