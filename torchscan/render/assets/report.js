(function(){
  var tbody=document.querySelector('#layers tbody');
  var rows=Array.prototype.slice.call(tbody.rows);
  var byName={};rows.forEach(function(r){byName[r.dataset.name]=r;});
  var collapsed={};
  function shown(r){var p=r.dataset.parent;while(p){if(collapsed[p])return false;var q=byName[p];p=q?q.dataset.parent:'';}
    return true;}
  function refresh(){rows.forEach(function(r){r.style.display=shown(r)?'':'none';
    var t=r.querySelector('button.tog');if(t){var c=!!collapsed[r.dataset.name];t.textContent=c?'▸':'▾';
    t.setAttribute('aria-expanded',c?'false':'true');}});}
  function showDepth(d){collapsed={};rows.forEach(function(r){if(r.classList.contains('parent')&&+r.dataset.depth>=d)
    collapsed[r.dataset.name]=true;});refresh();}
  tbody.addEventListener('click',function(e){var t=e.target.closest('.tog');if(!t)return;
    var n=t.closest('tr').dataset.name;collapsed[n]=!collapsed[n];refresh();});
  document.querySelectorAll('[data-depth-button]').forEach(function(b){b.addEventListener('click',function(){
    showDepth(+b.dataset.depthButton||1e9);});});
  var heads=document.querySelectorAll('#layers th');
  heads.forEach(function(th,i){th.addEventListener('click',function(){
    var asc=th.classList.contains('sorted-desc')||(!th.classList.contains('sorted-asc')&&th.dataset.first==='asc');
    heads.forEach(function(h){h.classList.remove('sorted-asc','sorted-desc');});
    th.classList.add(asc?'sorted-asc':'sorted-desc');
    var num=th.dataset.type==='num';
    var sorted=rows.slice().sort(function(a,b){
      var x=a.cells[i].dataset.v,y=b.cells[i].dataset.v;if(x===undefined)x=a.cells[i].textContent;
      if(y===undefined)y=b.cells[i].textContent;
      var c=num?(+x)-(+y):String(x).localeCompare(String(y));if(c===0)c=(+a.dataset.order)-(+b.dataset.order);
      return asc?c:-c;});
    sorted.forEach(function(r){tbody.appendChild(r);});});});
  showDepth(+document.getElementById('layers').dataset.initialDepth);
  document.documentElement.classList.add('js');
})();
