# Appeals (申诉) arrive with the appeals issue; the app is installed now so the layout is stable.
