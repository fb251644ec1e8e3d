/** Server-rendered pages; every one needs a logged-in user. */
import { Router } from 'express';

export function pagesRouter(): Router {
  const router = Router();
  router.get('/', (req, res) => {
    res.render('pages/home', { title: 'My custom images', user: req.user });
  });
  return router;
}
