from feedhandlers.app import main

raise SystemExit(main())
